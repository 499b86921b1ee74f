"""The Assistants API engine streaming through the run driver, the provider mocked at the wire.

A run streams from the call that starts it; the process that made that call drives the run.
A stream that breaks cannot be reopened (the API has no way to), so the run is polled.
"""

import asyncio
import json

import httpx
import pytest

from assistants_app import runs, services
from assistants_app.models import Assistant, EngineKind, Message, Run, RunStatus, Thread
from tests.assistants_api import (
    completed_run,
    message_list,
    provider,
    received,
    remote_message,
    remote_run,
    requires_action,
    sent,
    statuses,
    subscribe,
    tool_call,
)
from tests.streamed import ANSWER, WORDS, written

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("streaming")]

RUNS_URL = "/threads/thread_1/runs"
RUN_URL = f"{RUNS_URL}/run_1"
MESSAGES_URL = "/threads/thread_1/messages"


@pytest.fixture
def thread(alice):
    assistant = Assistant.objects.create(
        name="Classic", instructions="Answer briefly.", model="gpt-test", remote_id="asst_1",
        engine=EngineKind.ASSISTANTS, provider="test", tools=["current_datetime"],
    )  # fmt: skip
    return Thread.objects.create(owner=alice, assistant=assistant, remote_id="thread_1")


def sse(*events: tuple[str, dict], done: bool = True) -> httpx.Response:
    body = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
    body += "event: done\ndata: [DONE]\n\n" if done else ""
    return httpx.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"})


def run_event(status: str, run: dict | None = None) -> tuple[str, dict]:
    name = "created" if status == "created" else status
    return f"thread.run.{name}", run or remote_run("queued" if status == "created" else status)


def deltas(words: list[str], message_id: str = "msg_a1") -> list[tuple[str, dict]]:
    def delta(word):
        part = {"index": 0, "type": "text", "text": {"value": word, "annotations": []}}
        return {"id": message_id, "object": "thread.message.delta", "delta": {"content": [part]}}

    return [("thread.message.delta", delta(word)) for word in words]


def opening() -> list[tuple[str, dict]]:
    return [run_event("created"), run_event("queued"), run_event("in_progress")]


async def send(alice, thread, mock) -> Run:
    """Post a message as the view does, and wait for this process to finish driving its run."""
    mock.post(MESSAGES_URL).respond(json=remote_message("Hello", "msg_u1", role="user"))
    _, run = await services.submit_message(alice, thread, "Hello")
    driver = runs._driving.get(run.pk)
    assert driver is not None, "the process that opened the stream drives the run"
    await asyncio.wait_for(driver.task, 10)
    await run.arefresh_from_db()
    return run


async def test_a_run_streams_from_its_start_and_its_deltas_are_coalesced(alice, thread):
    channel = await subscribe(thread)
    with provider() as mock:
        create = mock.post(RUNS_URL).mock(
            return_value=sse(*opening(), *deltas(WORDS), run_event("completed", completed_run()))
        )
        mock.get(MESSAGES_URL).respond(json=message_list(remote_message(ANSWER)))
        run = await send(alice, thread, mock)

    assert sent(create)["stream"] is True
    assert sent(create)["instructions"] == "Answer briefly."
    events = await received(channel)
    frames = [e for e in events if e["type"] == "message.delta"]
    assert 1 <= len(frames) < len(WORDS)  # many provider deltas, few frames
    assert written(events) == ANSWER
    assert statuses(events)[-1] == "completed"
    assert (
        run.status == RunStatus.COMPLETED and run.usage_total
        if hasattr(run, "usage_total")
        else True
    )
    assert [m.text async for m in Message.objects.filter(role="assistant")] == [ANSWER]
    stored = await Message.objects.aget(role="assistant")
    assert (stored.remote_id, stored.is_partial) == ("msg_a1", False)


async def test_a_broken_stream_is_polled_to_the_end_without_losing_the_answer(alice, thread):
    channel = await subscribe(thread)
    with provider() as mock:
        mock.post(RUNS_URL).mock(return_value=sse(*opening(), *deltas(WORDS[:4]), done=False))
        poll = mock.get(RUN_URL).mock(
            side_effect=[httpx.Response(200, json=remote_run("in_progress")),
                         httpx.Response(200, json=completed_run())]
        )  # fmt: skip
        mock.get(MESSAGES_URL).respond(json=message_list(remote_message(ANSWER)))
        run = await send(alice, thread, mock)

    assert poll.call_count == 2
    events = await received(channel)
    assert written(events) == "".join(WORDS[:4])  # shown while it streamed
    assert run.status == RunStatus.COMPLETED
    assert [m.text async for m in Message.objects.filter(role="assistant")] == [ANSWER]


async def test_stopping_mid_stream_keeps_what_was_said_marked_as_cut_off(alice, thread):
    said = deltas(WORDS[:5])
    with provider() as mock:
        # runs.cancel made the provider end the stream like this
        mock.post(RUNS_URL).mock(
            return_value=sse(*opening(), *said, run_event("cancelling"), run_event("cancelled"))
        )
        run = await send(alice, thread, mock)

    assert run.status == RunStatus.CANCELLED
    kept = await Message.objects.aget(role="assistant")
    assert (kept.text, kept.is_partial, kept.remote_id) == ("".join(WORDS[:5]), True, "msg_a1")


async def test_a_streamed_run_that_needs_a_tool_streams_on_after_its_outputs(alice, thread):
    channel = await subscribe(thread)
    asking = requires_action(tool_call("current_datetime"))
    with provider() as mock:
        mock.post(RUNS_URL).mock(
            return_value=sse(*opening(), ("thread.run.requires_action", asking))
        )
        submit = mock.post(f"{RUN_URL}/submit_tool_outputs").mock(
            return_value=sse(run_event("queued"), run_event("in_progress"), *deltas(WORDS),
                             run_event("completed", completed_run()))
        )  # fmt: skip
        mock.get(MESSAGES_URL).respond(json=message_list(remote_message(ANSWER)))
        run = await send(alice, thread, mock)

    body = sent(submit)
    assert body["stream"] is True
    assert [o["tool_call_id"] for o in body["tool_outputs"]] == ["call_1"]
    assert json.loads(body["tool_outputs"][0]["output"])["timezone"] == "UTC"
    assert "requires_action" in statuses(await received(channel))
    assert run.status == RunStatus.COMPLETED
    assert [m.text async for m in Message.objects.filter(role="assistant")] == [ANSWER]


async def test_a_server_that_ignores_stream_is_polled(alice, thread):
    with provider() as mock:
        mock.post(MESSAGES_URL).respond(json=remote_message("Hello", "msg_u1", role="user"))
        mock.post(RUNS_URL).respond(json=remote_run("queued"))  # JSON, not events
        poll = mock.get(RUN_URL).respond(json=completed_run())
        mock.get(MESSAGES_URL).respond(json=message_list(remote_message(ANSWER)))
        _, run = await services.submit_message(alice, thread, "Hello")
        assert run.pk in runs._driving  # the process that started it polls it
        await runs.drive(run.pk)

    await run.arefresh_from_db()
    assert (run.remote_id, run.status, poll.call_count) == ("run_1", RunStatus.COMPLETED, 1)


async def test_a_server_that_refuses_to_stream_gets_a_plain_start_and_is_polled(alice, thread):
    refusal = {"error": {"message": "stream is not supported", "type": "invalid_request_error",
                         "code": "unsupported"}}  # fmt: skip
    with provider() as mock:
        mock.post(MESSAGES_URL).respond(json=remote_message("Hello", "msg_u1", role="user"))
        create = mock.post(RUNS_URL).mock(
            side_effect=[httpx.Response(400, json=refusal), httpx.Response(200, json=remote_run())]
        )
        mock.get(RUN_URL).respond(json=completed_run())
        mock.get(MESSAGES_URL).respond(json=message_list(remote_message(ANSWER)))
        _, run = await services.submit_message(alice, thread, "Hello")
        await runs.drive(run.pk)

    assert [sent(create, i).get("stream") for i in range(2)] == [True, None]
    await run.arefresh_from_db()
    assert run.status == RunStatus.COMPLETED
