"""Whatever goes wrong while a run starts, the message is kept, the request answers, the run
ends failed with a reason and the thread takes the next message at once: never a 500, never a
409 that outlives the run (issue 16)."""

import asyncio
import json

import httpx
import pytest
from django.urls import reverse

from assistants_app.engines.responses import ResponsesEngine
from assistants_app.models import Assistant, EngineKind, Message, Run, RunStatus, Thread
from tests.assistants_api import completed_run, message_list, provider, remote_message, remote_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def classic_thread(alice):
    assistant = Assistant.objects.create(
        name="Classic", model="gpt-test", remote_id="asst_1", engine=EngineKind.ASSISTANTS,
        provider="test",
    )  # fmt: skip
    return Thread.objects.create(owner=alice, assistant=assistant, remote_id="thread_1")


def post_message(client, thread, text):
    return client.post(
        reverse("message-create", args=[thread.pk]), {"text": text}, content_type="application/json"
    )


def events_as_text(*runs: dict) -> str:
    return "".join(f"event: thread.run.{r['status']}\ndata: {json.dumps(r)}\n\n" for r in runs)


def test_a_stream_served_without_its_content_type_is_read_all_the_same(
    alice_client, classic_thread, streaming
):
    body = events_as_text(remote_run("queued"), remote_run("in_progress"), completed_run())
    with provider() as mock:
        mock.post("/threads/thread_1/messages").respond(json=remote_message("Hi", "msg_u1", "user"))
        mock.post("/threads/thread_1/runs").mock(
            return_value=httpx.Response(200, text=body, headers={"content-type": "text/plain"})
        )
        mock.get("/threads/thread_1/messages").respond(json=message_list(remote_message("Hello")))
        response = post_message(alice_client, classic_thread, "Hi")

    assert response.status_code == 201
    run = Run.objects.get()
    assert (run.status, run.remote_id) == (RunStatus.COMPLETED, "run_1")
    assert Message.objects.filter(role="assistant", remote_id="msg_a1").exists()


def test_a_garbled_answer_fails_the_run_and_frees_the_thread(
    alice_client, classic_thread, streaming
):
    with provider() as mock:
        mock.post("/threads/thread_1/messages").respond(json=remote_message("Hi", "msg_u1", "user"))
        mock.post("/threads/thread_1/runs").mock(
            return_value=httpx.Response(200, text='{"id": "run_1", "stat')
        )
        first = post_message(alice_client, classic_thread, "Hi")
        second = post_message(alice_client, classic_thread, "Hi again")

    assert (first.status_code, second.status_code) == (201, 201)
    failed = first.json()["run"]
    assert (failed["status"], failed["error_code"]) == ("failed", "bad_answer")
    assert "not in the API's format" in failed["error_message"]
    assert list(Message.objects.values_list("text", flat=True)) == ["Hi", "Hi again"]


def test_an_unexpected_error_while_starting_fails_the_run_not_the_request(
    alice_client, alice_thread, monkeypatch
):
    async def broken(self, run, message):
        raise KeyError("a bug of ours")

    monkeypatch.setattr(ResponsesEngine, "start_run", broken)

    with provider() as mock:
        mock.post("/conversations").respond(json={"id": "conv_1", "object": "conversation",
                                                  "created_at": 1, "metadata": {}})  # fmt: skip
        first = post_message(alice_client, alice_thread, "Hi")
        second = post_message(alice_client, alice_thread, "Hi again")

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["run"]["error_code"] == "unexpected_error"
    assert "went wrong" in first.json()["run"]["error_message"]
    assert not Run.objects.active().exists()


async def test_a_chat_run_on_a_provider_that_is_down_fails_at_once_saying_so(alice, settings):
    from assistants_app import runs, services

    from .engines.test_provider_errors import closed_port

    settings.ASSISTANT_PROVIDERS = {
        **settings.ASSISTANT_PROVIDERS,
        "down": {"base_url": f"http://127.0.0.1:{closed_port()}/v1", "api_key": "x"},
    }
    assistant = await Assistant.objects.acreate(
        name="Local", model="llama", engine=EngineKind.CHAT, provider="down"
    )
    thread = await Thread.objects.acreate(owner=alice, assistant=assistant)
    thread.assistant = assistant
    _, run = await services.submit_message(alice, thread, "Hello")

    async with asyncio.timeout(10):  # not retried behind the user's back
        await runs.drive(run.pk)

    await run.arefresh_from_db()
    assert (run.status, run.error_code) == (RunStatus.FAILED, "connection_refused")
    assert "refused the connection" in run.error_message
