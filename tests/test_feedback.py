"""Feedback on answers: thumbs with an optional comment, and what staff see of it in admin."""

import pytest
from django.urls import reverse

from assistants_app.models import Feedback

from .conftest import make_assistant
from .test_tree import exchange

pytestmark = pytest.mark.django_db


def rate(client, thread, message, **data):
    url = reverse("message-feedback", args=[thread.pk, message.pk])
    return client.post(url, data, content_type="application/json")


@pytest.fixture
def answered(alice_chat_thread):
    return alice_chat_thread, *exchange(alice_chat_thread, "Is the sky green?", "Yes, green.")


def test_a_thumb_down_with_a_comment_is_kept_once_per_answer(alice_client, alice, answered):
    thread, _, answer = answered

    response = rate(alice_client, thread, answer, rating=-1, comment=" It is blue. ")
    assert response.status_code == 200
    response = rate(alice_client, thread, answer, rating=-1, comment="Blue.", share_thread=True)

    assert response.json()["feedback"] == {
        "message_id": answer.pk, "rating": -1, "comment": "Blue.", "share_thread": True
    }  # fmt: skip
    feedback = Feedback.objects.get()
    assert (feedback.user, feedback.assistant) == (alice, thread.assistant)


def test_the_page_shows_the_rating_given(alice_client, answered):
    thread, _, answer = answered
    rate(alice_client, thread, answer, rating=1)

    page = alice_client.get(reverse("thread-detail", args=[thread.pk])).content.decode()

    assert 'aria-label="Good answer" aria-pressed="true"' in page
    assert 'aria-label="Bad answer" aria-pressed="false"' in page


@pytest.mark.parametrize(
    ("data", "code"),
    [({"rating": 0}, "BAD_RATING"), ({"rating": "up"}, "BAD_RATING"),
     ({"rating": 1, "comment": "x" * 2001}, "COMMENT_TOO_LONG")],
)  # fmt: skip
def test_a_bad_rating_or_comment_is_refused_in_words(alice_client, answered, data, code):
    thread, _, answer = answered
    response = rate(alice_client, thread, answer, **data)
    assert (response.status_code, response.json()["error"]["code"]) == (400, code)
    assert not Feedback.objects.exists()


def test_my_own_message_cannot_be_rated(alice_client, answered):
    thread, question, _ = answered
    response = rate(alice_client, thread, question, rating=1)
    assert response.json()["error"]["code"] == "NOT_AN_ANSWER"


def test_bob_cannot_rate_alices_answers(bob_client, answered):
    thread, _, answer = answered
    assert rate(bob_client, thread, answer, rating=-1).status_code == 404
    assert not Feedback.objects.exists()


def test_staff_see_feedback_by_assistant_and_the_thread_only_when_shared(
    staff_client, alice_client, answered, alice
):
    thread, _, answer = answered
    rate(alice_client, thread, answer, rating=-1, comment="Wrong colour", share_thread=True)
    other = make_assistant(name="Other", engine="chat")
    thread.assistant = other
    thread.save()
    _, second = exchange(thread, "Private question", "Private answer")  # answered by Other
    rate(alice_client, thread, second, rating=1, comment="Fine")
    url = reverse("admin:assistants_app_feedback_changelist")

    page = staff_client.get(url).content.decode()
    assert "Wrong colour" in page and "Fine" in page
    assert page.count("Shared thread") == 1
    assert reverse("admin:assistants_app_thread_change", args=[thread.pk]) in page

    by_assistant = staff_client.get(url, {"assistant__id__exact": other.pk}).content.decode()
    assert "Fine" in by_assistant and "Wrong colour" not in by_assistant
    bad_only = staff_client.get(url, {"rating__exact": -1}).content.decode()
    assert "Wrong colour" in bad_only and "Fine" not in bad_only
    private = Feedback.objects.get(rating=1)
    detail = staff_client.get(reverse("admin:assistants_app_feedback_change", args=[private.pk]))
    assert "Private answer" not in detail.content.decode()  # not shared: not shown
