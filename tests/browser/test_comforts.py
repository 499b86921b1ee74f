"""The comforts people expect from a chat app, in Chromium: keyboard use, drafts, copying,
renaming, searching, exporting and deleting threads."""

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from ..live import PASSWORDS
from .conftest import answers, screenshot, send, start_thread

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

    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    tab_to(page, "#assistant")  # "Sim" is the first assistant
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="New thread")).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/threads/(\d+)/$"), timeout=45_000)
    thread_id = int(page.url.rstrip("/").split("/")[-1])

    expect(composer(page)).to_be_focused()
    page.keyboard.type("First line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    expect(composer(page)).to_have_value("First line\nsecond line")
    expect(page.locator("#messages li.message")).to_have_count(0)
    page.keyboard.press("Enter")

    expect(answers(page)).to_have_count(1)
    expect(composer(page)).to_be_focused()
    expect(composer(page)).to_have_value("")
    texts = site.query(f"list(Message.objects.filter(thread_id={thread_id}, role='user')"
                       ".values_list('text', flat=True))")  # fmt: skip
    assert texts == ["First line\nsecond line"]


def test_the_draft_survives_a_reload(site, log_in):
    page = log_in("alice")
    start_thread(page)
    composer(page).type("Half a thought")

    page.reload()

    expect(composer(page)).to_have_value("Half a thought")
    composer(page).press("Enter")
    expect(answers(page)).to_have_count(1)
    page.reload()
    expect(composer(page)).to_have_value("")


def test_messages_and_code_blocks_can_be_copied(site, log_in):
    page = log_in("alice", permissions=["clipboard-read", "clipboard-write"])
    start_thread(page)
    send(page, "Some code, please")
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


def test_a_thread_is_renamed_searched_exported_and_deleted(site, log_in):
    page = log_in("bob")
    start_thread(page)
    send(page, "Tomato growing tips")
    expect(answers(page)).to_have_count(1)

    page.get_by_text("Thread options").click()
    page.get_by_label("Title").fill("Garden notes")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Garden notes")
    expect(page.locator(".flash")).to_have_text("Renamed to “Garden notes”.")

    page.get_by_text("Thread options").click()
    markdown = download(page, "Export as Markdown").read_text()
    assert markdown.startswith("# Garden notes\n\nAssistant: Sim\n")
    assert "## You · " in markdown and "Tomato growing tips" in markdown
    exported = json.loads(download(page, "Export as JSON").read_text())
    assert [m["role"] for m in exported["messages"]] == ["user", "assistant"]

    page.goto("/")
    page.get_by_role("searchbox", name="Search my threads").fill("TOMATO")
    page.keyboard.press("Enter")
    expect(page.locator(".thread-title")).to_have_text(["Garden notes"])
    expect(page.locator("#threads time")).to_have_text("just now")
    screenshot(page, "10-thread-search")

    page.get_by_role("link", name="Delete “Garden notes”").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Delete “Garden notes”?")
    screenshot(page, "11-confirm-delete")
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Garden notes")
    page.get_by_text("Thread options").click()
    page.get_by_role("link", name="Delete thread…").click()
    page.get_by_role("button", name="Delete thread").click()

    expect(page.locator(".flash")).to_have_text("Deleted “Garden notes”.")
    expect(page.get_by_text("Garden notes", exact=True)).to_have_count(0)


def download(page, link_name: str) -> Path:
    with page.expect_download() as downloading:
        page.get_by_role("link", name=link_name).click()
    return Path(downloading.value.path())
