"""Share links in Chromium: Alice shares a chat from its menu, Bob opens the link, sees the
chat as it was (not what Alice wrote after), continues it as his own, and once Alice revokes
the link it no longer opens; a visitor who is not signed in is asked to log in."""

import re

import pytest
from playwright.sync_api import expect

from .conftest import answers, axe_violations, new_chat, screenshot
from .conftest import send as type_and_send

pytestmark = pytest.mark.slow


def send(page, text: str, count: int) -> None:
    """Send, and wait for the thread's `count`th answer."""
    type_and_send(page, text)
    expect(answers(page)).to_have_count(count)


def test_share_open_as_another_user_continue_and_revoke(site, log_in, open_context):
    alice = log_in("alice")
    thread_id = new_chat(alice, "Which herbs grow in shade?")
    expect(answers(alice)).to_have_count(1)

    alice.locator("#thread-menu summary").click()
    alice.get_by_role("button", name="Share a link…").click()
    expect(alice).to_have_url(re.compile(r"/shared/#link-\d+$"))
    expect(alice.locator(".flash")).to_contain_text("later messages are not shared")
    link_field = alice.get_by_role("textbox", name="Link to “Which herbs grow in shade?”")
    expect(link_field).to_be_visible()
    link = link_field.input_value()
    assert re.fullmatch(rf"{re.escape(site.url)}/s/[A-Za-z0-9_-]{{43}}/", link), link
    screenshot(alice, "share-01-links")
    alice.reload()  # the page itself, without the one-off notice (_flash.html's own markup)
    assert axe_violations(alice) == []

    alice.goto(f"/threads/{thread_id}/")
    send(alice, "A later question, not shared", 2)

    bob = log_in("bob")
    bob.goto(link)
    expect(bob.get_by_role("heading", name="Which herbs grow in shade?")).to_be_visible()
    messages = bob.locator("#shared-messages > li")
    expect(messages).to_have_count(2)
    expect(messages.nth(0)).to_contain_text("Which herbs grow in shade?")
    expect(messages.nth(1)).to_contain_text("Simulated reply")
    expect(bob.locator("body")).not_to_contain_text("A later question")
    expect(bob.locator("body")).not_to_contain_text("alice")
    robots = bob.locator('meta[name="robots"]')
    expect(robots).to_have_attribute("content", "noindex, nofollow")
    screenshot(bob, "share-02-shared-page")
    assert axe_violations(bob) == []

    bob.get_by_role("button", name="Continue this chat").click()
    expect(bob).to_have_url(re.compile(r"/threads/\d+/$"))
    assert f"/threads/{thread_id}/" not in bob.url  # a thread of his own
    expect(bob.locator("#chat-title")).to_have_text("Which herbs grow in shade?")
    expect(bob.locator("#messages li.user")).to_have_count(1)
    expect(answers(bob)).to_have_count(1)
    send(bob, "And which need sun?", 2)
    expect(answers(bob).last).to_contain_text("Simulated reply")
    expect(bob.locator("#threads a[aria-current=page]")).to_have_text(
        re.compile("Which herbs grow in shade?")
    )
    screenshot(bob, "share-03-continued")

    alice.goto("/shared/")
    alice.get_by_role("button", name="Revoke the link to “Which herbs grow in shade?”").click()
    expect(alice.locator(".flash")).to_contain_text("Link revoked")
    expect(alice.locator("#no-links")).to_be_visible()

    response = bob.goto(link)
    assert response.status == 404
    expect(bob.locator("body")).not_to_contain_text("Which herbs grow in shade?")


def test_a_visitor_who_is_not_signed_in_is_asked_to_log_in(site, log_in, open_context):
    alice = log_in("alice")
    new_chat(alice, "Private by default")
    expect(answers(alice)).to_have_count(1)
    alice.locator("#thread-menu summary").click()
    alice.get_by_role("button", name="Share a link…").click()
    link = alice.get_by_role("textbox", name="Link to “Private by default”").input_value()

    visitor = open_context(base_url=site.url).new_page()
    visitor.goto(link)
    expect(visitor).to_have_url(re.compile(r"/login/\?next=/s/"))
    expect(visitor.locator("body")).not_to_contain_text("Private by default")
