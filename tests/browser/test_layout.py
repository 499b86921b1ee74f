"""The layout people know from chat apps, in Chromium: a sidebar of chats grouped by date
that loads more as it scrolls, a new chat that makes no thread until its first message, the
last assistant preselected with its conversation starters, a drawer and a one-line header on
a phone, long titles cut with an ellipsis, a favicon."""

import pytest
from playwright.sync_api import expect

from .conftest import DESKTOP, PHONE, answers, box, new_chat, screenshot, seed_thread

pytestmark = pytest.mark.slow

MANY_THREADS = """
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from assistants_app.models import Assistant, Thread
owner = get_user_model().objects.get(username="bob")
sim = Assistant.objects.get(name="Sim")
for number in range(60):
    thread = Thread.objects.create(owner=owner, assistant=sim, title=f"Old chat {number:02}")
    when = timezone.now() - timedelta(days=40 + number)
    Thread.objects.filter(pk=thread.pk).update(updated_at=when)
"""
STARTERS = """
from assistants_app.models import Assistant
Assistant.objects.filter(name="Sim slow").update(
    conversation_starters=["Plan a vegetable bed", "Explain compost like I am five"])
"""


def threads_in_db(site, owner: str) -> int:
    return site.query(f"Thread.objects.filter(owner__username={owner!r}).count()")


def test_the_sidebar_groups_chats_by_date_and_loads_more_as_it_scrolls(site, log_in):
    site.manage("shell", "--verbosity", "0", "-c", MANY_THREADS)
    seed_thread(site, "bob", "From yesterday", [("user", "hi")], days_ago=1)
    seed_thread(site, "bob", "From last week", [("user", "hi")], days_ago=4)
    page = log_in("bob", **DESKTOP)
    new_chat(page, "Today's question")

    groups = page.locator("#threads h2.group")
    expect(groups.first).to_have_text("Today")
    expect(groups.nth(1)).to_have_text("Yesterday")
    expect(groups.nth(2)).to_have_text("Previous 7 days")
    expect(page.locator("#threads .thread-item")).to_have_count(50)  # one page at first
    screenshot(page, "24-sidebar-groups")

    page.locator("#threads .thread-item").last.scroll_into_view_if_needed()
    page.locator(".thread-nav").evaluate("n => n.scrollTo(0, n.scrollHeight)")
    expect(page.locator("#threads .thread-item")).to_have_count(63)
    expect(page.locator("#load-more")).to_have_count(0)  # all there
    titles = page.locator("#threads .thread-title").all_inner_texts()
    assert len(set(titles)) == 63
    month_groups = [g for g in groups.all_inner_texts() if g[-4:].isdigit()]
    assert month_groups and len(month_groups) == len(set(month_groups))  # merged, not repeated


def test_a_new_chat_makes_no_thread_until_the_first_message(site, log_in):
    page = log_in("alice", **DESKTOP)
    before = threads_in_db(site, "alice")
    for _ in range(3):
        page.get_by_role("link", name="New chat").click()
        expect(page.get_by_role("heading", name="What can I help with?")).to_be_visible()
    assert threads_in_db(site, "alice") == before

    new_chat(page, "Now there is one")
    assert threads_in_db(site, "alice") == before + 1


def test_the_last_assistant_is_preselected_and_its_starters_start_a_chat(site, log_in):
    site.manage("shell", "--verbosity", "0", "-c", STARTERS)
    page = log_in("alice", **DESKTOP)
    new_chat(page, "With the slow one", assistant="Sim slow")
    expect(answers(page)).to_have_count(1, timeout=20_000)

    page.get_by_role("link", name="New chat").click()
    picker = page.get_by_label("Assistant", exact=True)
    expect(picker.locator("option:checked")).to_have_text("Sim slow (simulated)")
    starters = page.get_by_role("list", name="Conversation starters for Sim slow")
    expect(starters.get_by_role("button")).to_have_text(
        ["Plan a vegetable bed", "Explain compost like I am five"]
    )
    expect(page.locator("#composer-assistant")).to_have_text("Sim slow")
    screenshot(page, "25-new-chat-starters")
    picker.select_option(label="Sim (simulated)")
    expect(starters).to_be_hidden()
    expect(page.locator("#composer-assistant")).to_have_text("Sim")
    picker.select_option(label="Sim slow (simulated)")

    starters.get_by_role("button", name="Plan a vegetable bed").click()
    page.wait_for_url("**/threads/*/")
    expect(page.locator("#messages li.message.user .body")).to_have_text("Plan a vegetable bed")
    # The header's picker names the thread's assistant (and can switch it).
    expect(page.locator("#thread-assistant option:checked")).to_have_text("Sim slow (simulated)")


def test_on_a_phone_the_sidebar_is_a_drawer_and_the_header_one_line(site, log_in):
    page = log_in("bob", **PHONE)
    new_chat(page, "A phone chat with a rather long title that cannot fit on one line at all")
    expect(answers(page)).to_have_count(1)

    header = box(page, ".chat-header")
    assert header["height"] <= 56, header  # one compact line, not most of the screen
    assert box(page, "#scroller")["height"] >= 844 * 0.6
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px on a phone"
    assert page.get_by_role("button", name="Send").bounding_box()["height"] >= 40
    screenshot(page, "09-phone-thread")

    page.get_by_role("button", name="Chats", exact=True).click()
    expect(page.locator("#sidebar")).to_be_in_viewport()
    expect(page.get_by_role("searchbox", name="Search chats")).to_be_focused()
    page.wait_for_timeout(400)  # the drawer slides in
    screenshot(page, "08-phone-drawer")
    page.keyboard.press("Escape")
    expect(page.locator("#sidebar")).not_to_be_in_viewport()


def test_long_titles_are_cut_with_an_ellipsis(site, log_in):
    title = "A very long title " * 12
    thread_id = seed_thread(site, "alice", title.strip(), [("user", "hi")])
    page = log_in("alice", **DESKTOP)
    page.goto(f"/threads/{thread_id}/")
    for selector in ("#chat-title", f'#threads [data-id="{thread_id}"] .thread-title'):
        element = page.locator(selector)
        assert element.evaluate("e => getComputedStyle(e).textOverflow") == "ellipsis"
        assert element.evaluate("e => e.scrollWidth > e.clientWidth")  # cut, on one line
        expect(element).to_have_attribute("title", title.strip())  # the whole title on hover


def test_the_site_has_a_favicon(site, log_in):
    page = log_in("alice", **DESKTOP)
    href = page.locator("link[rel=icon]").get_attribute("href")
    response = page.request.get(href)
    assert response.status == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
