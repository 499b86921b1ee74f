"""Thread pages and the message endpoint: login, ownership, validation and run start."""

import html
import re

import pytest
import respx
from django.urls import reverse

from assistants_app.models import Message, Run, RunStatus, Thread

from .conftest import PROVIDER_URL
from .provider_payloads import api_error, conversation, response

pytestmark = pytest.mark.django_db


@pytest.fixture
def provider():
    with respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=False) as mock:
        mock.post("/conversations").respond(json=conversation())
        mock.post("/responses").respond(json=response("queued"))
        yield mock


def post_message(client, thread, text):
    return client.post(
        reverse("message-create", args=[thread.pk]), {"text": text}, content_type="application/json"
    )


@pytest.mark.parametrize(
    "url_name, args", [("thread-list", []), ("thread-detail", ["thread"])]
)  # fmt: skip
def test_it_sends_anonymous_visitors_to_login(client, alice_thread, url_name, args):
    url = reverse(url_name, args=[alice_thread.pk if a == "thread" else a for a in args])
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_refuses_anonymous_posts(client, alice_thread):
    response = post_message(client, alice_thread, "hi")
    assert response.status_code == 302
    assert not Message.objects.exists()


def test_it_lists_only_my_threads(alice_client, alice_thread, bob_thread):
    bob_thread.title = "Bob's secret plans"
    bob_thread.save()
    response = alice_client.get(reverse("thread-list"))
    assert list(response.context["threads"]) == [alice_thread]
    assert b"secret plans" not in response.content


def test_it_starts_a_thread_with_a_chosen_assistant(alice_client, alice, assistant):
    response = alice_client.post(reverse("thread-create"), {"assistant": assistant.pk})
    thread = Thread.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("thread-detail", args=[thread.pk])
    assert (thread.owner, thread.assistant) == (alice, assistant)


def test_it_refuses_an_inactive_assistant(alice_client, assistant):
    assistant.is_active = False
    assistant.save()
    response = alice_client.post(reverse("thread-create"), {"assistant": assistant.pk})
    assert response.status_code == 404
    assert not Thread.objects.exists()


def test_it_shows_the_thread_with_its_history(alice_client, alice_thread):
    Message.objects.create(thread=alice_thread, role="user", text="What is *this*?")
    Message.objects.create(thread=alice_thread, role="assistant", text="It is *that*.")
    response = alice_client.get(reverse("thread-detail", args=[alice_thread.pk]))
    assert response.status_code == 200
    assert b"It is <em>that</em>." in response.content  # answers are Markdown
    assert b"composer-text" in response.content


def test_it_shows_a_users_message_as_typed(alice_client, alice_thread):
    typed = "# note\n1) first\n    indented *not em* <b>tag</b>"
    Message.objects.create(thread=alice_thread, role="user", text=typed)
    page = alice_client.get(reverse("thread-detail", args=[alice_thread.pk])).content.decode()
    shown = re.search(r'<div class="body user-text">(.*?)</div>', page, re.S)[1]
    assert html.unescape(shown) == typed  # no Markdown, line breaks and spaces kept
    assert "&lt;b&gt;tag&lt;/b&gt;" in shown  # HTML shown as text


def test_it_says_plainly_when_replies_are_simulated(alice_client, alice_thread, assistant):
    assistant.provider = "simulator"
    assistant.save()
    response = alice_client.get(reverse("thread-detail", args=[alice_thread.pk]))
    assert b"simulated" in response.content


def test_it_hides_other_users_threads(bob_client, alice_thread):
    response = bob_client.get(reverse("thread-detail", args=[alice_thread.pk]))
    assert response.status_code == 404


def test_it_refuses_posts_to_other_users_threads(bob_client, alice_thread, provider):
    response = post_message(bob_client, alice_thread, "hi")
    assert response.status_code == 404
    assert not Message.objects.exists()


def test_it_stores_the_message_and_starts_a_run(alice_client, alice_thread, provider):
    response = post_message(alice_client, alice_thread, "  Hello there  ")

    assert response.status_code == 201
    body = response.json()
    message = Message.objects.get()
    run = Run.objects.get()
    assert (message.role, message.text) == ("user", "  Hello there  ")  # as typed
    assert body["message"]["id"] == message.pk
    assert body["thread"] == {"title": "Hello there"}  # named after its first message
    assert body["run"] == {
        "id": run.pk,
        "status": "queued",
        "is_terminal": False,
        "can_retry": False,
        "error_code": "",
        "error_message": "",
        "prompt_id": message.pk,
        "summary": "Waiting for the assistant...",
        "note": "",
    }
    assert body["message"]["text"] == "  Hello there  "  # the page shows it as typed
    assert run.prompt == message
    assert run.remote_id == "resp_abc123"
    alice_thread.refresh_from_db()
    assert alice_thread.title == "Hello there"


def test_it_answers_409_while_a_run_is_active(alice_client, alice_thread, provider):
    Run.objects.create(thread=alice_thread, status=RunStatus.IN_PROGRESS)
    response = post_message(alice_client, alice_thread, "Another one")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "RUN_ACTIVE"
    assert "still answering" in response.json()["error"]["message"]
    assert not Message.objects.exists()


@pytest.mark.parametrize("text", ["", "   \n ", None])
def test_it_answers_400_to_empty_text(alice_client, alice_thread, text):
    response = post_message(alice_client, alice_thread, text)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "EMPTY_MESSAGE"


def test_it_answers_400_to_oversized_text(alice_client, alice_thread, settings):
    settings.MESSAGE_MAX_CHARS = 10
    response = post_message(alice_client, alice_thread, "x" * 11)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MESSAGE_TOO_LONG"
    assert not Message.objects.exists()


def test_it_accepts_a_form_post_too(alice_client, alice_thread, provider):
    response = alice_client.post(reverse("message-create", args=[alice_thread.pk]), {"text": "Hi"})
    assert response.status_code == 201


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_send_pressed_before_the_scripts_ran_sends_and_goes_back_to_the_thread(
    alice_client, alice_thread, provider
):
    """The browser posts the composer's form itself: the message is sent and the person lands
    on the thread, not on a page of JSON."""
    url = reverse("message-create", args=[alice_thread.pk])
    response = alice_client.post(url, {"text": "Hi"}, HTTP_ACCEPT=BROWSER_ACCEPT)
    assert response.status_code == 302
    assert response["Location"] == reverse("thread-detail", args=[alice_thread.pk])
    assert alice_thread.messages.get().text == "Hi"


def test_a_refused_form_post_says_why_on_the_thread(alice_client, alice_thread, provider):
    url = reverse("message-create", args=[alice_thread.pk])
    response = alice_client.post(url, {"text": "  "}, HTTP_ACCEPT=BROWSER_ACCEPT, follow=True)
    assert response.redirect_chain == [(reverse("thread-detail", args=[alice_thread.pk]), 302)]
    assert "Write a message before sending." in response.content.decode()
    assert not alice_thread.messages.exists()


def test_a_provider_error_at_start_fails_the_run_and_keeps_the_message(alice_client, alice_thread):
    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        provider.post("/conversations").respond(
            401, json=api_error("Incorrect API key provided.", "invalid_api_key")
        )
        response = post_message(alice_client, alice_thread, "Hello")

    assert response.status_code == 201
    run = Run.objects.get()
    assert response.json()["run"]["status"] == "failed"
    assert (run.status, run.error_code) == (RunStatus.FAILED, "unauthorized")
    assert run.error_message == (
        "The provider refused the API key (HTTP 401): Incorrect API key provided."
    )
    assert Message.objects.get().text == "Hello"


def test_a_failed_run_does_not_block_the_next_message(alice_client, alice_thread, provider):
    Run.objects.create(thread=alice_thread, status=RunStatus.FAILED)
    assert post_message(alice_client, alice_thread, "Again").status_code == 201


def test_the_pages_carry_a_content_security_policy(alice_client, alice_thread):
    response = alice_client.get(reverse("thread-detail", args=[alice_thread.pk]))
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_a_broken_answer_is_not_called_stopped_by_the_user(alice_client, alice_thread):
    prompt = Message.objects.create(thread=alice_thread, role="user", text="Tell me")
    run = Run.objects.create(
        thread=alice_thread, prompt=prompt, status=RunStatus.FAILED,
        error_code="stream_broken", error_message="The connection to the provider broke.",
    )  # fmt: skip
    Message.objects.create(
        thread=alice_thread, role="assistant", text="Half an", run=run, is_partial=True
    )
    page = alice_client.get(reverse("thread-detail", args=[alice_thread.pk])).content.decode()
    assert "The assistant could not answer. The connection to the provider broke." in page
    assert "stopped" not in page.lower()
    assert page.count('class="retry"') == 1  # on that answer, once


def test_an_answer_the_user_stopped_says_so_once(alice_client, alice_thread):
    prompt = Message.objects.create(thread=alice_thread, role="user", text="Tell me")
    run = Run.objects.create(thread=alice_thread, prompt=prompt, status=RunStatus.CANCELLED)
    Message.objects.create(
        thread=alice_thread, role="assistant", text="Half an", run=run, is_partial=True
    )
    page = alice_client.get(reverse("thread-detail", args=[alice_thread.pk])).content.decode()
    assert page.count("You stopped this answer.") == 1
