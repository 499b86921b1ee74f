"""The chat as people use it, in Chromium: log in, send, watch the state, get the answer;
reload mid-run, stop, fail and retry (in place of the failed answer); two people side by
side."""

import re
import time

import pytest
from playwright.sync_api import expect

from .conftest import answers, new_chat, run_state, screenshot

pytestmark = pytest.mark.slow


def record_states(page) -> None:
    """Keep every text the answers' state lines show in window.seenStates: some last a
    moment."""
    page.evaluate(
        """() => {
            window.seenStates = [];
            new MutationObserver(() => {
                for (const line of document.querySelectorAll(".run-state"))
                    window.seenStates.push(line.textContent.trim());
            }).observe(document.getElementById("messages"),
                       {childList: true, characterData: true, subtree: true});
        }"""
    )


def test_a_person_logs_in_sends_and_sees_the_state_then_the_answer(site, log_in, open_context):
    login_page = open_context(base_url=site.url).new_page()
    login_page.goto("/login/")
    screenshot(login_page, "01-login")
    page = log_in("alice")
    expect(page.locator("#no-threads")).to_be_visible()
    screenshot(page, "02-new-chat-empty")

    thread_id = new_chat(page, "Hello! Show me some code, please.")

    # The thread is named after its first message.
    expect(page.locator("#chat-title")).to_have_text("Hello! Show me some code, please.")
    expect(page).to_have_title(re.compile(r"^Hello! Show me some code, please\. · "))
    expect(page.locator(f'#threads [data-id="{thread_id}"] a[aria-current=page]')).to_be_visible()
    expect(answers(page)).to_have_count(1)
    answer = answers(page).first
    expect(answer).to_contain_text("Simulated reply")
    expect(run_state(page)).to_be_hidden()  # a completed answer needs no words
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    # Inside the live region, so screen readers announce it; code is highlighted.
    expect(page.locator("#messages[aria-live=polite] li.assistant .part[data-id]")).to_have_count(1)
    expect(answer.locator("pre code span.k").first).to_have_text("def")
    expect(answer.locator(".code-language")).to_have_text("python")
    expect(answer.locator(".role time")).to_have_text("just now")
    screenshot(page, "05-thread-answered")


def test_the_state_reads_in_words_while_the_answer_comes(site, log_in):
    page = log_in("alice")
    new_chat(page, "Hello")
    record_states(page)
    page.get_by_label("Message", exact=True).fill("And again, with code")
    page.get_by_role("button", name="Send").click()
    expect(answers(page)).to_have_count(2)
    seen = page.evaluate("window.seenStates")
    assert any(re.match(r"Waiting for the assistant|Thinking|Writing", s) for s in seen), seen
    assert not any(s.startswith(("Run ", "The run")) for s in seen), seen


def test_reloading_mid_run_still_shows_the_answer(site, log_in):
    page = log_in("alice")
    new_chat(page, "Take your time", assistant="Sim slow")
    expect(page.locator("#stop")).to_be_visible()
    expect(page.get_by_role("button", name="Send")).to_be_hidden()  # Send became Stop
    screenshot(page, "04-thread-running")

    page.reload()

    expect(run_state(page)).to_have_text(re.compile("Waiting|Thinking|Writing|Still working"))
    expect(answers(page)).to_have_count(1, timeout=20_000)
    expect(answers(page)).to_contain_text("Take your time")
    expect(run_state(page)).to_be_hidden()


def test_a_failed_run_says_so_once_inside_its_answer(site, log_in):
    page = log_in("alice")
    new_chat(page, "This will fail", assistant="Sim fail")

    state = run_state(page)
    expect(state).to_have_attribute("data-status", "failed")
    expect(state).to_have_text(re.compile(r"^The assistant could not answer\. .*asked to fail"))
    # Once, in the answer it belongs to, with Retry beside it.
    expect(page.get_by_text(re.compile("could not answer"))).to_have_count(1)
    answer = page.locator("#messages li.assistant")
    expect(answer.locator(".retry")).to_be_visible()
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    screenshot(page, "06-thread-failed")
    page.reload()
    expect(run_state(page)).to_have_text(re.compile(r"could not answer.*asked to fail"))
    expect(page.locator("#messages li.assistant .retry")).to_be_visible()


def test_a_retry_takes_the_place_of_the_failed_answer(site, log_in):
    page = log_in("alice")
    thread_id = new_chat(page, "Fail, then again", assistant="Sim fail")
    retry = page.locator("#messages li.assistant .retry")
    expect(retry).to_be_visible()

    retry.click()

    statuses = f"list(Run.objects.filter(thread_id={thread_id}).values_list('status', flat=True))"
    deadline = time.monotonic() + 15
    while site.query(statuses) != ["failed", "failed"]:  # the simulator fails it again
        assert time.monotonic() < deadline, site.query(statuses)
        time.sleep(0.2)
    answer = page.locator("#messages li.assistant")
    expect(answer).to_have_count(1)  # not a second answer stacked under the first
    expect(answer.locator(".version")).to_have_count(1)
    expect(answer.locator(".retry")).to_be_visible()
    expect(page.get_by_text(re.compile("could not answer"))).to_have_count(1)
    screenshot(page, "14-thread-retried")

    page.reload()
    expect(page.locator("#messages li.assistant")).to_have_count(1)
    expect(page.locator("#messages li.assistant .retry")).to_be_visible()


@pytest.mark.parametrize("how", ["button", "escape"])
def test_a_run_can_be_stopped(site, log_in, how):
    page = log_in("alice")
    new_chat(page, "Never ending", assistant="Sim stuck")
    expect(page.locator("#stop")).to_be_visible()
    copy_answer = page.get_by_role("button", name="Copy the answer")
    expect(copy_answer).to_be_hidden()  # nothing to copy while it is being written

    if how == "button":
        page.locator("#stop").click()
    else:
        page.get_by_label("Message", exact=True).press("Escape")

    expect(run_state(page)).to_have_attribute("data-status", "cancelled")
    expect(run_state(page)).to_have_text("You stopped this answer.")
    expect(copy_answer).to_be_visible()  # what was said can be copied now
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    expect(page.get_by_label("Message", exact=True)).to_be_focused()
    # The state line and Retry are above the composer, not under it.
    state, composer = run_state(page).bounding_box(), page.locator("#composer").bounding_box()
    assert state["y"] + state["height"] <= composer["y"], (state, composer)
    screenshot(page, f"07-thread-stopped-{how}")


def test_two_people_never_see_each_others_threads(site, log_in):
    alice, bob = log_in("alice"), log_in("bob")
    alice_thread = new_chat(alice, "Alice's private pumpkin plans")
    bob_thread = new_chat(bob, "Bob's secret beetroot recipe")
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
    bob.goto("/")
    bob.get_by_role("searchbox", name="Search chats").fill("pumpkin")
    expect(bob.locator("#no-results")).to_be_visible()
