"""Retrying a run that failed or was stopped: a new run answering the same message."""

import json

import pytest
import respx
from django.urls import reverse

from assistants_app.models import Message, Run, RunStatus

from .conftest import PROVIDER_URL


def retry(client, thread):
    return client.post(reverse("run-retry", args=[thread.pk]))


@pytest.fixture
def failed_run(alice_chat_thread):
    prompt = Message.objects.create(thread=alice_chat_thread, role="user", text="Tell me a story")
    return Run.objects.create(
        thread=alice_chat_thread,
        prompt=prompt,
        status=RunStatus.FAILED,
        remote_id="chat-1",
        error_code="connection_error",
        error_message="Could not connect to the provider.",
    )


@pytest.mark.parametrize(
    "status", [RunStatus.FAILED, RunStatus.EXPIRED, RunStatus.CANCELLED, RunStatus.INCOMPLETE]
)
def test_it_starts_a_new_run_for_the_same_message(
    alice_client, alice_chat_thread, failed_run, status
):
    Run.objects.filter(pk=failed_run.pk).update(status=status)
    Message.objects.create(thread=alice_chat_thread, role="assistant", text="Once upon")

    response = retry(alice_client, alice_chat_thread)

    assert response.status_code == 201
    new_run = Run.objects.get(pk=response.json()["run"]["id"])
    assert new_run.prompt_id == failed_run.prompt_id
    assert (new_run.status, new_run.remote_id) == (RunStatus.QUEUED, f"chat-{new_run.pk}")
    assert response.json()["run"]["status"] == "queued"
    # What the failed run left stays as it was.
    failed_run.refresh_from_db()
    assert failed_run.status == status
    assert [m.text for m in alice_chat_thread.messages.all()] == [
        "Tell me a story",
        "Once upon",
    ]


def test_it_refuses_bobs_retry_of_alices_thread(bob_client, alice_chat_thread, failed_run):
    response = retry(bob_client, alice_chat_thread)

    assert response.status_code == 404
    assert Run.objects.filter(thread=alice_chat_thread).count() == 1


def test_it_refuses_while_a_run_is_active(alice_client, alice_chat_thread, failed_run):
    Run.objects.create(thread=alice_chat_thread, prompt=failed_run.prompt)

    response = retry(alice_client, alice_chat_thread)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "RUN_ACTIVE"


def test_it_refuses_after_a_complete_answer(alice_client, alice_chat_thread, failed_run):
    Run.objects.filter(pk=failed_run.pk).update(status=RunStatus.COMPLETED)

    response = retry(alice_client, alice_chat_thread)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "NOTHING_TO_RETRY"
    assert Run.objects.filter(thread=alice_chat_thread).count() == 1


def test_it_refuses_a_thread_without_runs(alice_client, alice_chat_thread):
    response = retry(alice_client, alice_chat_thread)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "NOTHING_TO_RETRY"


def test_it_refuses_a_retired_assistant(alice_client, alice_chat_thread, failed_run):
    alice_chat_thread.assistant.is_active = False
    alice_chat_thread.assistant.save()

    response = retry(alice_client, alice_chat_thread)

    assert response.status_code == 403
    assert Run.objects.filter(thread=alice_chat_thread).count() == 1


def test_it_only_accepts_post(alice_client, alice_chat_thread, failed_run):
    response = alice_client.get(reverse("run-retry", args=[alice_chat_thread.pk]))

    assert response.status_code == 405


def test_it_works_for_the_responses_engine(alice_client, alice_thread):
    alice_thread.remote_id = "conv_1"
    alice_thread.save()
    prompt = Message.objects.create(thread=alice_thread, role="user", text="Hello")
    Run.objects.create(thread=alice_thread, prompt=prompt, status=RunStatus.FAILED)
    queued = {
        "id": "resp_2", "object": "response", "created_at": 1, "status": "queued",
        "model": "gpt-test", "output": [], "error": None, "incomplete_details": None,
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
    }  # fmt: skip

    with respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=True) as provider:
        route = provider.post("/responses").respond(json=queued)
        response = retry(alice_client, alice_thread)

    assert response.status_code == 201
    assert Run.objects.get(pk=response.json()["run"]["id"]).remote_id == "resp_2"
    sent = json.loads(route.calls.last.request.content)
    assert (sent["input"], sent["conversation"]) == ("Hello", "conv_1")


def test_the_page_offers_a_retry_only_after_an_unfinished_answer(
    alice_client, alice_chat_thread, failed_run
):
    page = alice_client.get(reverse("thread-detail", args=[alice_chat_thread.pk]))
    assert page.content.count(b'<button type="button" class="retry">Retry</button>') == 1

    Run.objects.filter(pk=failed_run.pk).update(status=RunStatus.COMPLETED)
    page = alice_client.get(reverse("thread-detail", args=[alice_chat_thread.pk]))
    assert b'class="retry"' not in page.content
