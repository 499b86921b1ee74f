"""The comforts people expect from a chat app, in Chromium: keyboard use and shortcuts,
drafts, copying, renaming, searching, exporting and deleting chats (with undo), the theme."""

import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from ..live import PASSWORDS
from .conftest import answers, new_chat, screenshot

pytestmark = pytest.mark.slow

CODE_SAMPLE = 'def greet(name: str) -> str:\n    return f"Hello, {name}!"'


def composer(page):
    return page.get_by_label("Message", exact=True)


def tab_to(page, selector: str, limit: int = 40) -> None:
    """Press Tab until the element matching `selector` has focus, as a keyboard user would."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} is not reachable with Tab")


def test_it_can_be_used_with_the_keyboard_alone(site, open_context):
    page = open_context(base_url=site.url).new_page()
    page.goto("/login/")
    # The username field has focus on arrival; typing before autofocus lands would lose keys
    # (that, not slowness, made this test fail now and then).
    expect(page.locator("#id_username")).to_be_focused()
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORDS["alice"])
    page.keyboard.press("Enter")
    page.wait_for_url(f"{site.url}/", timeout=45_000)  # a loaded CI machine is slow

    # The new-chat page: the message box has focus, Shift+Enter adds a line, Enter sends.
    expect(composer(page)).to_be_focused()
    page.keyboard.type("First line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    expect(composer(page)).to_have_value("First line\nsecond line")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/threads/(\d+)/$"), timeout=45_000)
    thread_id = int(page.url.rstrip("/").split("/")[-1])

    expect(answers(page)).to_have_count(1)
    expect(composer(page)).to_be_focused()
    expect(composer(page)).to_have_value("")
    texts = site.query(f"list(Message.objects.filter(thread_id={thread_id}, role='user')"
                       ".values_list('text', flat=True))")  # fmt: skip
    assert texts == ["First line\nsecond line"]
    page.keyboard.press("Shift+Tab")
    tab_to(page, "#messages li.assistant button.copy")  # every control can be reached


def test_keyboard_shortcuts_are_listed_and_work(site, log_in):
    page = log_in("alice")
    new_chat(page, "Shortcuts, please")
    expect(answers(page)).to_have_count(1)

    page.keyboard.press("Control+/")
    help = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help).to_be_visible()
    expect(help).to_contain_text("New chat")
    screenshot(page, "15-help-dialog")
    page.keyboard.press("Escape")
    expect(help).to_be_hidden()

    page.keyboard.press("Control+k")
    expect(page.get_by_role("searchbox", name="Search chats")).to_be_focused()
    page.keyboard.press("Shift+Escape")
    expect(composer(page)).to_be_focused()
    page.keyboard.press("Control+Shift+O")
    page.wait_for_url(f"{site.url}/")
    expect(page.get_by_role("heading", name="What can I help with?")).to_be_visible()


def test_the_theme_choice_persists(site, log_in):
    page = log_in("bob", color_scheme="light")
    background = "getComputedStyle(document.body).backgroundColor"
    assert page.evaluate(background) == "rgb(247, 247, 248)"
    toggle = page.locator("#theme-toggle")
    expect(toggle).to_have_text("Theme: system")
    toggle.click()
    expect(toggle).to_have_text("Theme: light")
    toggle.click()
    expect(toggle).to_have_text("Theme: dark")
    assert page.evaluate(background) == "rgb(22, 22, 26)"

    page.reload()
    expect(page.locator("#theme-toggle")).to_have_text("Theme: dark")
    assert page.evaluate(background) == "rgb(22, 22, 26)"
    page.goto("/login/")  # every page, not only the chat
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"


def test_the_draft_survives_a_reload(site, log_in):
    page = log_in("alice")
    new_chat(page, "First")
    expect(answers(page)).to_have_count(1)
    composer(page).type("Half a thought")

    page.reload()

    expect(composer(page)).to_have_value("Half a thought")
    composer(page).press("Enter")
    expect(answers(page)).to_have_count(2)
    page.reload()
    expect(composer(page)).to_have_value("")


def test_messages_and_code_blocks_can_be_copied(site, log_in):
    page = log_in("alice", permissions=["clipboard-read", "clipboard-write"])
    new_chat(page, "Some code, please\n  indented <b>as typed</b>")
    answer = answers(page)
    expect(answer).to_have_count(1)

    answer.get_by_role("button", name="Copy code (python)").click()

    assert page.evaluate("navigator.clipboard.readText()").strip() == CODE_SAMPLE
    expect(page.locator("#announcer")).to_have_text("Copied to the clipboard.")
    expect(answer.locator(".code-bar button")).to_have_text("Copied")
    answer.get_by_role("button", name="Copy the answer").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("Simulated reply from the offline simulator")
    assert CODE_SAMPLE in copied
    page.get_by_role("button", name="Copy your message").click()
    assert page.evaluate("navigator.clipboard.readText()") == (
        "Some code, please\n  indented <b>as typed</b>"
    )


def test_a_chat_is_renamed_searched_exported_and_deleted_with_undo(site, log_in):
    page = log_in("bob")
    thread_id = new_chat(page, "Tomato growing tips")
    expect(answers(page)).to_have_count(1)
    row = page.locator(f'#threads .thread-item[data-id="{thread_id}"]')

    # Inline rename in the sidebar.
    row.get_by_label("Options for “Tomato growing tips”").click()
    row.get_by_role("link", name="Rename").click()
    field = row.get_by_label("New title for “Tomato growing tips”")
    field.fill("Garden notes")
    field.press("Enter")
    expect(row.locator(".thread-title")).to_have_text("Garden notes")
    expect(page.locator("#chat-title")).to_have_text("Garden notes")
    assert site.query(f"Thread.objects.get(pk={thread_id}).title") == "Garden notes"

    page.get_by_label("Thread options").click()
    markdown = download(page, "Export as Markdown")
    assert markdown.name == "garden-notes.md"  # named after the chat
    assert markdown.read_text().startswith("# Garden notes\n\nAssistant: Sim\n")
    exported = download(page, "Export as JSON")
    assert exported.name == "garden-notes.json"
    assert [m["role"] for m in json.loads(exported.read_text())["messages"]] == [
        "user", "assistant",
    ]  # fmt: skip

    # Live search, with the words that matched. (The page's clock from here on is one the
    # test can move forward: it runs as usual until the undo window below.)
    page.clock.install()
    page.goto("/")
    page.get_by_role("searchbox", name="Search chats").fill("TOMATO")
    hits = page.locator("#threads .thread-item")
    expect(hits).to_have_count(1)
    expect(hits.locator(".snippet")).to_have_text("Tomato growing tips")
    screenshot(page, "10-thread-search")
    page.get_by_role("searchbox", name="Search chats").fill("")
    expect(page.locator("#threads .snippet")).to_have_count(0)

    # Delete, undo, delete.
    row = page.locator(f'#threads .thread-item[data-id="{thread_id}"]')
    row.get_by_label("Options for “Garden notes”").click()
    row.get_by_role("link", name="Delete").click()
    expect(row).to_be_hidden()
    toast = page.locator("#toast")
    expect(toast).to_contain_text("Deleted “Garden notes”.")
    screenshot(page, "11-deleted-with-undo")
    toast.get_by_role("button", name="Undo").click()
    expect(row).to_be_visible()
    page.clock.run_for(7000)  # past the undo window (6 s): nothing was deleted...
    time.sleep(1)  # ...not even by a request sent at its end
    assert site.query(f"Thread.objects.filter(pk={thread_id}).exists()") is True

    row.get_by_label("Options for “Garden notes”").click()
    row.get_by_role("link", name="Delete").click()
    page.clock.run_for(7000)  # the window ends without an undo: deleted
    deadline = time.monotonic() + 15
    while site.query(f"Thread.objects.filter(pk={thread_id}).exists()"):
        assert time.monotonic() < deadline, page.locator("#toast").inner_text()  # why not
        time.sleep(0.3)
    page.reload()
    expect(page.get_by_text("Garden notes", exact=True)).to_have_count(0)


def test_a_chat_starts_and_the_confirm_page_works_without_javascript(site, log_in, open_context):
    page = log_in("bob", java_script_enabled=False)
    page.goto("/")
    # An answer that is never finished: the delete below meets it still going, however long
    # the pages take (the process that started the run drives it, page or no page).
    page.get_by_label("Assistant", exact=True).select_option(label="Sim stuck (simulated)")
    page.get_by_label("Message", exact=True).fill("No scripts here")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r"/threads/\d+/$"))
    thread_id = int(page.url.rstrip("/").split("/")[-1])
    page.goto(f"/threads/{thread_id}/delete/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Delete “No scripts here”?")
    screenshot(page, "16-confirm-delete")
    page.get_by_role("button", name="Delete thread").click()
    # The answer is unfinished: the delete is refused in words, and the chat is kept.
    expect(page.locator(".flash")).to_have_text(re.compile("still answering"))
    assert site.query(f"Thread.objects.filter(pk={thread_id}).exists()") is True


def download(page, link_name: str) -> Path:
    """The file the link downloads, under the name the browser suggests."""
    with page.expect_download() as downloading:
        page.get_by_role("link", name=link_name).click()
    path = Path(downloading.value.path())
    named = path.with_name(downloading.value.suggested_filename)
    path.rename(named)
    return named
