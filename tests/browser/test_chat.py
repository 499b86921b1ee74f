"""The chat as people use it, in Chromium: log in, send, watch the status, get the answer;
reload mid-run, stop, fail and retry; two people side by side; a phone."""

import re
import time

import pytest
from playwright.sync_api import expect

from .conftest import PHONE, answers, screenshot, send, start_thread

pytestmark = pytest.mark.slow


def status_line(page):
    return page.locator("#run-status")


def record_statuses(page) -> None:
    """Keep every text the status line shows in window.seenStatuses: some last a moment."""
    page.evaluate(
        """() => {
            window.seenStatuses = [];
            const line = document.getElementById("run-status");
            new MutationObserver(() => window.seenStatuses.push(line.textContent.trim()))
                .observe(line, {childList: true, characterData: true, subtree: true});
        }"""
    )


def test_a_person_logs_in_sends_and_sees_the_status_then_the_answer(site, log_in, open_context):
    login_page = open_context(base_url=site.url).new_page()
    login_page.goto("/login/")
    screenshot(login_page, "01-login")
    page = log_in("alice")
    expect(page.locator("#no-threads")).to_be_visible()
    screenshot(page, "02-thread-list-empty")

    start_thread(page)
    expect(page.locator("#empty-state")).to_have_text("No messages yet. Say hello below.")
    expect(page.get_by_text("Sim", exact=True)).to_be_visible()  # the assistant's name
    screenshot(page, "03-thread-empty")
    record_statuses(page)
    send(page, "Hello! Show me some code, please.")

    # The thread is named after its first message at once, not on the next reload.
    expect(page.locator(".chat-header h1")).to_have_text("Hello! Show me some code, please.")
    expect(page).to_have_title(re.compile(r"^Hello! Show me some code, please\. · "))
    expect(answers(page)).to_have_count(1)
    seen = page.evaluate("window.seenStatuses")
    assert any(re.match("Queued|Assistant is writing", text) for text in seen), seen
    answer = answers(page).first
    expect(answer).to_contain_text("Simulated reply")
    expect(status_line(page)).to_have_text("")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    # Inside the live region, so screen readers announce it; code is highlighted.
    expect(page.locator("#messages[aria-live=polite] li.assistant[data-id]")).to_have_count(1)
    expect(answer.locator("pre code span.k").first).to_have_text("def")
    expect(answer.locator(".code-language")).to_have_text("python")
    expect(answer.locator("time")).to_have_text("just now")
    screenshot(page, "05-thread-answered")

    page.goto("/")
    expect(page.locator(".thread-title")).to_have_text(["Hello! Show me some code, please."])


def test_reloading_mid_run_still_shows_the_answer(site, log_in):
    page = log_in("alice")
    start_thread(page, "Sim slow")
    send(page, "Take your time")
    expect(status_line(page)).to_have_text(re.compile("Queued|writing"))
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    screenshot(page, "04-thread-running")

    page.reload()

    expect(status_line(page)).to_have_text(re.compile("Queued|writing|working"))  # not done yet
    expect(answers(page)).to_have_count(1, timeout=20_000)
    expect(answers(page)).to_contain_text("Take your time")
    expect(status_line(page)).to_have_text("")


def test_a_failed_run_says_so_plainly(site, log_in):
    page = log_in("alice")
    start_thread(page, "Sim fail")
    send(page, "This will fail")

    expect(status_line(page)).to_have_attribute("data-status", "failed")
    expect(status_line(page)).to_contain_text(re.compile(r"failed.*asked to fail", re.I))
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    screenshot(page, "06-thread-failed")
    page.reload()
    expect(status_line(page)).to_contain_text(re.compile(r"failed.*asked to fail", re.I))


def test_a_failed_run_can_be_retried(site, log_in):
    page = log_in("alice")
    thread_id = start_thread(page, "Sim fail")
    send(page, "Fail, then again")
    expect(page.locator("#retry")).to_be_visible()

    page.locator("#retry").click()

    statuses = f"list(Run.objects.filter(thread_id={thread_id}).values_list('status', flat=True))"
    deadline = time.monotonic() + 15
    while site.query(statuses) != ["failed", "failed"]:  # the simulator fails it again
        assert time.monotonic() < deadline, site.query(statuses)
        time.sleep(0.2)
    expect(page.locator("#retry")).to_be_visible()
    expect(status_line(page)).to_contain_text(re.compile("failed", re.I))


@pytest.mark.parametrize("how", ["button", "escape"])
def test_a_run_can_be_stopped(site, log_in, how):
    page = log_in("alice")
    start_thread(page, "Sim stuck")
    send(page, "Never ending")
    expect(page.locator("#stop")).to_be_visible()

    if how == "button":
        page.locator("#stop").click()
    else:
        page.get_by_label("Message", exact=True).press("Escape")

    expect(status_line(page)).to_have_attribute("data-status", "cancelled")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    expect(page.get_by_label("Message", exact=True)).to_be_focused()
    screenshot(page, f"07-thread-stopped-{how}")


def test_two_people_never_see_each_others_threads(site, log_in):
    alice, bob = log_in("alice"), log_in("bob")
    alice_thread = start_thread(alice)
    send(alice, "Alice's private pumpkin plans")
    bob_thread = start_thread(bob)
    send(bob, "Bob's secret beetroot recipe")
    expect(answers(alice)).to_have_count(1)
    expect(answers(bob)).to_have_count(1)

    alice.goto("/")
    bob.goto("/")
    expect(alice.locator("#threads")).to_contain_text("pumpkin")
    expect(alice.locator("#threads")).not_to_contain_text("beetroot")
    expect(bob.locator("#threads")).to_contain_text("beetroot")
    expect(bob.locator("#threads")).not_to_contain_text("pumpkin")
    assert bob.goto(f"/threads/{alice_thread}/").status == 404
    assert alice.goto(f"/threads/{bob_thread}/export.json").status == 404
    bob.goto("/?q=pumpkin")
    expect(bob.locator("#no-results")).to_be_visible()


def test_it_works_on_a_phone(site, log_in):
    page = log_in("bob", **PHONE)
    screenshot(page, "08-phone-thread-list")
    start_thread(page)
    send(page, "Hello from a phone, show me some code")
    expect(answers(page)).to_have_count(1)

    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px on a phone"
    box = page.get_by_role("button", name="Send").bounding_box()
    assert box["height"] >= 40, "the Send button is too small to tap"
    screenshot(page, "09-phone-thread")
