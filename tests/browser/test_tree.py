"""Edit and resend, regenerate, versions `< 1/2 >`, feedback and switching assistant, in
Chromium, as a person sees them."""

import re

import pytest
from playwright.sync_api import expect

from .conftest import answers, new_chat, screenshot, send

pytestmark = pytest.mark.slow


def user_messages(page):
    return page.locator("#messages li.message.user")


def finished(page, count: int) -> None:
    """Wait until `count` answers are complete and nothing is being written."""
    expect(answers(page)).to_have_count(count)
    expect(page.get_by_role("button", name="Send")).to_be_visible()


def test_editing_a_message_makes_a_version_with_its_own_answer(site, log_in):
    page = log_in("alice")
    new_chat(page, "My name is Ann")
    finished(page, 1)
    send(page, "What is my name?")
    finished(page, 2)
    expect(answers(page).last).to_contain_text("Before that you said: “My name is Ann”")

    first = user_messages(page).first
    first.get_by_role("button", name="Edit your message").click()
    editor = first.get_by_role("textbox", name="Edit your message")
    expect(editor).to_have_value("My name is Ann")  # as typed, ready to change
    expect(first.locator(".body")).to_be_hidden()
    screenshot(page, "40-editing")
    editor.fill("My name is Bob")
    editor.press("Enter")

    # The new version replaces the branch: its answer, and nothing of the old one after it.
    expect(user_messages(page)).to_have_count(1)
    expect(user_messages(page).first.locator(".body")).to_have_text("My name is Bob")
    expect(user_messages(page).first.locator(".versions .count")).to_have_text("2/2")
    finished(page, 1)
    expect(answers(page).first).to_contain_text("You said: “My name is Bob”")
    expect(page.get_by_text("What is my name?")).to_have_count(0)
    screenshot(page, "41-edited-version")

    user_messages(page).first.get_by_role("button", name="Previous version").click()
    expect(user_messages(page).first.locator(".versions .count")).to_have_text("1/2")
    expect(user_messages(page)).to_have_count(2)  # the old branch, whole
    expect(user_messages(page).first.locator(".body")).to_have_text("My name is Ann")
    expect(answers(page).last).to_contain_text("Before that you said: “My name is Ann”")

    page.reload()  # the server remembers which version is shown
    expect(user_messages(page).first.locator(".versions .count")).to_have_text("1/2")
    expect(user_messages(page).first.locator(".body")).to_have_text("My name is Ann")


def test_regenerate_adds_a_version_of_the_answer(site, log_in):
    page = log_in("alice")
    new_chat(page, "Tell me about tomatoes")
    finished(page, 1)
    answer = page.locator("#messages li.message.assistant")
    expect(answer.locator(".body")).not_to_contain_text("This is answer 2")

    answer.get_by_role("button", name="Regenerate the answer").click()

    expect(answer.locator(".versions .count")).to_have_text("2/2")
    finished(page, 1)  # one answer on show, not two stacked
    expect(answer.locator(".body")).to_contain_text("This is answer 2 to that message.")
    screenshot(page, "42-regenerated")
    answer.get_by_role("button", name="Previous version").click()
    expect(answer.locator(".versions .count")).to_have_text("1/2")
    expect(answer.locator(".body")).not_to_contain_text("This is answer 2")
    expect(answer.get_by_role("button", name="Next version")).to_be_enabled()
    expect(answer.get_by_role("button", name="Previous version")).to_be_disabled()


def test_a_thumb_down_with_a_comment_is_kept(site, log_in):
    page = log_in("alice")
    thread_id = new_chat(page, "Is the sky green?")
    finished(page, 1)
    answer = answers(page).first

    bad = answer.get_by_role("button", name="Bad answer")
    bad.click()
    expect(bad).to_have_attribute("aria-pressed", "true")
    answer.get_by_label("Tell us more (optional)").fill("The sky is blue.")
    answer.get_by_label(re.compile("Share this chat with the staff")).check()
    screenshot(page, "43-feedback-form")
    answer.get_by_role("button", name="Send feedback").click()
    expect(answer.get_by_text("Thanks for the feedback.")).to_be_visible()

    stored = site.query(
        f"list(Feedback.objects.filter(message__thread_id={thread_id})"
        ".values_list('rating', 'comment', 'share_thread'))"
    )
    assert stored == [[-1, "The sky is blue.", True]]
    page.reload()
    expect(answers(page).first.get_by_role("button", name="Bad answer")).to_have_attribute(
        "aria-pressed", "true"
    )


def test_switching_assistant_mid_thread_is_marked_where_it_happened(site, log_in):
    page = log_in("alice")
    new_chat(page, "Hello first assistant")
    finished(page, 1)

    page.get_by_label("Assistant", exact=True).select_option(label="Sim slow (simulated)")

    marker = page.get_by_role("note").filter(has_text="Switched to Sim slow")
    expect(marker).to_be_visible()
    expect(page.get_by_label("Message", exact=True)).to_have_attribute(
        "placeholder", "Message Sim slow"
    )
    send(page, "Hello second assistant")
    finished(page, 2)
    second = answers(page).last
    expect(second.locator(".role")).to_contain_text("Sim slow")
    expect(answers(page).first.locator(".role")).to_contain_text("Sim")
    # The marker sits where the switch happened: before the question the second one answered.
    question = user_messages(page).last.bounding_box()
    assert answers(page).first.bounding_box()["y"] < marker.bounding_box()["y"] < question["y"]
    screenshot(page, "44-switched-assistant")
