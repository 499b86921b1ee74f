"""The Responses engine on providers that offer less than OpenAI (capabilities.py): each run
takes the best path the provider allows, with the provider mocked strictly at the wire."""

import json

import httpx
import pytest

from assistants_app import runs
from assistants_app.models import Message, ProviderCapabilities, Run, RunStatus

from ..provider_payloads import RESPONSE_ID, api_error, response

pytestmark = pytest.mark.django_db(transaction=True)


async def start(thread, text: str = "Hello") -> Run:
    prompt = await Message.objects.acreate(thread=thread, role="user", text=text)
    run = await Run.objects.acreate(thread=thread, prompt=prompt)
    run.thread = thread
    await runs.start(run, prompt)
    await run.arefresh_from_db()
    return run


def sent(route, call: int = -1) -> dict:
    return json.loads(route.calls[call].request.content)


async def test_a_provider_without_the_responses_api_is_named_in_the_error(
    provider_mock, alice_thread, known_capabilities
):
    known_capabilities.responses = False

    run = await start(alice_thread)

    assert (run.status, run.error_code) == (RunStatus.FAILED, "endpoint_not_found")
    assert run.error_message.startswith("This provider has no /v1/responses")


async def test_a_provider_that_lost_its_conversations_is_remembered_and_sent_the_history(
    provider_mock, alice_thread, known_capabilities
):
    # (A thread holding earlier messages asks for no conversation: see test_sharing.py.)
    conversations = provider_mock.post("/conversations").respond(404, json={"detail": "Not Found"})
    create = provider_mock.post("/responses").respond(json=response("queued"))

    run = await start(alice_thread)

    assert conversations.call_count == 1
    assert (run.status, run.remote_id) == (RunStatus.QUEUED, RESPONSE_ID)
    body = sent(create)
    assert "conversation" not in body and "previous_response_id" not in body
    assert body["input"] == [{"role": "user", "content": "Hello"}]
    assert (body["background"], body["store"]) == (True, True)
    known = await ProviderCapabilities.objects.aget(provider="test")
    assert known.conversations is False

    await Run.objects.filter(pk=run.pk).aupdate(status=RunStatus.COMPLETED)
    await start(alice_thread, "Again")  # asks for no conversation any more
    assert conversations.call_count == 1


async def test_a_run_is_chained_to_the_threads_last_answered_response(
    provider_mock, alice_thread, known_capabilities
):
    known_capabilities.conversations = False
    earlier = await Message.objects.acreate(thread=alice_thread, role="user", text="Earlier")
    run = await Run.objects.acreate(
        thread=alice_thread, prompt=earlier, remote_id="resp_earlier", status=RunStatus.COMPLETED
    )
    await Message.objects.acreate(thread=alice_thread, role="assistant", text="Sure", run=run)
    create = provider_mock.post("/responses").respond(json=response("queued"))

    await start(alice_thread)

    body = sent(create)
    assert (body["previous_response_id"], body["input"]) == ("resp_earlier", "Hello")


async def test_a_conversation_too_long_for_the_model_is_sent_again_truncated(
    provider_mock, alice_thread
):
    alice_thread.remote_id = "conv_abc123"
    await alice_thread.asave()
    overflow = api_error("Your input exceeds the context window of this model.",
                         "context_length_exceeded")  # fmt: skip
    create = provider_mock.post("/responses").mock(
        side_effect=[
            httpx.Response(400, json=overflow),
            httpx.Response(200, json=response("queued")),
        ]
    )

    run = await start(alice_thread)

    assert run.status == RunStatus.QUEUED
    assert "truncation" not in sent(create, 0)
    assert sent(create, 1)["truncation"] == "auto"
    assert run.note.startswith("Older messages were left out")


async def test_a_retrieve_that_does_not_stream_is_remembered_and_polled(
    provider_mock, started_run, streaming
):
    retrieve = provider_mock.get(f"/responses/{RESPONSE_ID}").mock(
        side_effect=[
            httpx.Response(200, json=response("in_progress")),  # asked to stream: plain JSON
            httpx.Response(200, json=response("completed", text="Done")),
        ]
    )

    await runs.drive(started_run.pk)

    await started_run.arefresh_from_db()
    assert started_run.status == RunStatus.COMPLETED
    assert retrieve.calls[0].request.url.params.get("stream") == "true"
    assert "stream" not in retrieve.calls[1].request.url.params
    assert (await ProviderCapabilities.objects.aget(provider="test")).streamed_retrieve is False


async def test_a_stop_the_provider_does_not_hear_still_stops_the_run(provider_mock, started_run):
    provider_mock.post(f"/responses/{RESPONSE_ID}/cancel").respond(json=response("in_progress"))
    run = await Run.objects.select_related("thread__assistant").aget(pk=started_run.pk)
    run.partial_text = "Once upon"

    await runs.cancel(run)

    await run.arefresh_from_db()
    assert run.status == RunStatus.CANCELLED
    said = [(m.text, m.is_partial) async for m in Message.objects.filter(role="assistant")]
    assert said == [("Once upon", True)]
    assert (await ProviderCapabilities.objects.aget(provider="test")).cancel is False


async def test_after_an_answer_failed_for_length_the_next_is_sent_truncated(
    provider_mock, alice_thread
):
    alice_thread.remote_id = "conv_abc123"
    await alice_thread.asave()
    earlier = await Message.objects.acreate(thread=alice_thread, role="user", text="Earlier")
    await Run.objects.acreate(thread=alice_thread, prompt=earlier, status=RunStatus.FAILED,
                              error_code="context_overflow")  # fmt: skip
    create = provider_mock.post("/responses").respond(json=response("queued"))

    run = await start(alice_thread, "Retry, please")

    assert sent(create)["truncation"] == "auto"
    assert run.note.startswith("Older messages were left out")
