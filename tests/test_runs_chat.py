"""The run driver executing Chat Completions runs itself: history, storage, cancel, failure."""

import asyncio

import httpx
import pytest

from assistants_app import runs, services
from assistants_app.engines.base import RunUpdate
from assistants_app.models import Message, Run, RunStatus, Thread

from .chat_stream import answer, chunk, sent, streamed
from .streamed import written
from .test_streaming import collect, drain

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def thread(alice_chat_thread):
    return await Thread.objects.select_related("assistant").aget(pk=alice_chat_thread.pk)


async def answers(thread: Thread) -> list[tuple[str, bool]]:
    """The thread's answers, each with whether it is partial (cut short)."""
    replies = thread.messages.filter(role=Message.Role.ASSISTANT)
    return [(m.text, m.is_partial) async for m in replies]


def paused_after(*events: bytes) -> tuple:
    """A stream that sends `events` and then waits; `said` is set once they were read."""
    said = asyncio.Event()

    async def events_then_silence():
        for event in events:
            yield event
        said.set()
        await asyncio.Event().wait()

    return events_then_silence(), said


async def story_begun(alice, thread, provider_mock) -> tuple[Run, asyncio.Task]:
    """A run being driven whose answer has said "Once upon" and goes on thinking."""
    events, said = paused_after(chunk("", role="assistant"), chunk("Once upon"))
    provider_mock.post("/chat/completions").mock(return_value=streamed(events))
    _, run = await services.submit_message(alice, thread, "Tell me a story")
    driving = runs.ensure_driving(run.pk)
    await asyncio.wait_for(said.wait(), 5)
    return run, driving


async def test_it_answers_once_from_the_threads_own_history(alice, thread, provider_mock):
    await Message.objects.acreate(thread=thread, role="user", text="Hi")
    await Message.objects.acreate(thread=thread, role="assistant", text="Hello!")
    route = provider_mock.post("/chat/completions").mock(
        return_value=streamed(answer("Four", ".", usage=(30, 2)))
    )

    _, run = await services.submit_message(alice, thread, "What is 2+2?")
    assert run.status == RunStatus.QUEUED and route.call_count == 0
    await runs.drive(run.pk)
    await runs.drive(run.pk)  # a second driver finds the run finished

    await run.arefresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert (run.input_tokens, run.output_tokens, run.total_tokens) == (30, 2, 32)
    assert await answers(thread) == [("Hello!", False), ("Four.", False)]
    assert route.call_count == 1
    assert sent(route)["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What is 2+2?"},
    ]


async def test_it_sends_the_trimmed_history(alice, thread, provider_mock, settings):
    settings.CHAT_HISTORY_MAX_CHARS = len("Answer briefly.") + 25
    await Message.objects.acreate(thread=thread, role="user", text="An old question " * 3)
    await Message.objects.acreate(thread=thread, role="assistant", text="An answer")
    route = provider_mock.post("/chat/completions").mock(return_value=streamed(answer("Ok")))

    _, run = await services.submit_message(alice, thread, "A new one")
    await runs.drive(run.pk)

    # The newest messages that fit (9 + 9 characters), oldest dropped; the answer left first
    # without its question is dropped too.
    assert sent(route)["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "A new one"},
    ]


async def test_it_marks_the_run_in_progress_while_generating(alice, thread, provider_mock):
    run, driving = await story_begun(alice, thread, provider_mock)

    assert (await Run.objects.aget(pk=run.pk)).status == RunStatus.IN_PROGRESS
    driving.cancel()


async def test_the_answer_reaches_the_page_while_it_is_written(alice, thread, provider_mock):
    layer, channel = await collect(thread.group_name)
    run, driving = await story_begun(alice, thread, provider_mock)

    received = await drain(layer, channel)

    assert written(received) == "Once upon"
    # Saved too, for a page that reloads or a socket on another process.
    assert (await Run.objects.aget(pk=run.pk)).partial_text == "Once upon"
    driving.cancel()


async def test_cancel_stops_the_generation_and_keeps_what_was_said(alice, thread, provider_mock):
    run, driving = await story_begun(alice, thread, provider_mock)

    await runs.cancel(run)
    await asyncio.wait_for(driving, 5)

    await run.arefresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.finished_at is not None
    assert await answers(thread) == [("Once upon", True)]


async def test_a_cancel_stored_by_another_process_stops_the_generation(
    alice, thread, provider_mock
):
    run, driving = await story_begun(alice, thread, provider_mock)

    await Run.objects.filter(pk=run.pk).aupdate(status=RunStatus.CANCELLING)
    await asyncio.wait_for(driving, 5)

    assert (await Run.objects.aget(pk=run.pk)).status == RunStatus.CANCELLED
    assert await answers(thread) == [("Once upon", True)]


async def test_cancel_before_the_generation_starts_calls_no_provider(alice, thread, provider_mock):
    _, run = await services.submit_message(alice, thread, "Tell me a story")

    await runs.cancel(run)
    await asyncio.wait_for(runs.ensure_driving(run.pk), 5)

    assert (await Run.objects.aget(pk=run.pk)).status == RunStatus.CANCELLED
    assert await answers(thread) == []


async def test_a_broken_stream_fails_the_run_and_loses_nothing(alice, thread, provider_mock):
    async def broken():
        yield chunk("", role="assistant")
        yield chunk("Once upon")
        raise httpx.ReadError("connection reset by peer")

    provider_mock.post("/chat/completions").mock(return_value=streamed(broken()))

    message, run = await services.submit_message(alice, thread, "Tell me a story")
    await runs.drive(run.pk)

    await run.arefresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error_code == "stream_broken"
    assert "broke in the middle" in run.error_message
    assert await Message.objects.filter(pk=message.pk).aexists()
    assert await answers(thread) == [("Once upon", True)]


async def test_a_refused_connection_fails_the_run_with_a_readable_reason(
    alice, thread, provider_mock
):
    route = provider_mock.post("/chat/completions").mock(
        side_effect=httpx.ConnectError("[Errno 111] Connection refused")
    )

    _, run = await services.submit_message(alice, thread, "Hi")
    await runs.drive(run.pk)

    await run.arefresh_from_db()
    assert (run.status, run.error_code) == (RunStatus.FAILED, "connection_error")
    assert run.error_message == "Could not connect to the provider."
    assert route.call_count == 1


async def test_it_waits_out_a_rate_limit_before_answering(alice, thread, provider_mock):
    limited = httpx.Response(
        429, json={"error": {"message": "Slow down"}}, headers={"retry-after-ms": "10"}
    )
    route = provider_mock.post("/chat/completions").mock(
        side_effect=[limited, streamed(answer("Hi"))]
    )

    _, run = await services.submit_message(alice, thread, "Hi")
    await runs.drive(run.pk)

    assert (await Run.objects.aget(pk=run.pk)).status == RunStatus.COMPLETED
    assert route.call_count == 2
    assert await answers(thread) == [("Hi", False)]


async def test_a_generation_past_the_deadline_expires_keeping_what_was_said(
    alice, thread, provider_mock, settings
):
    events, _ = paused_after(chunk("", role="assistant"), chunk("Once upon"))
    provider_mock.post("/chat/completions").mock(return_value=streamed(events))
    settings.RUN_MAX_SECONDS = 0.5  # the generation says "Once upon", then nothing more

    _, run = await services.submit_message(alice, thread, "Tell me a story")
    await asyncio.wait_for(runs.drive(run.pk), 5)

    run = await Run.objects.aget(pk=run.pk)
    assert (run.status, run.error_code) == (RunStatus.EXPIRED, "expired")
    assert await answers(thread) == [("Once upon", True)]


async def test_a_run_asked_to_stop_is_not_set_going_again(alice, thread, provider_mock):
    # The race a generation's start loses to Stop: the cancel stored first is not overwritten.
    _, run = await services.submit_message(alice, thread, "Tell me a story")
    await runs.stop_driving()  # the race is played by hand: no driver goes on meanwhile
    await Run.objects.filter(pk=run.pk).aupdate(status=RunStatus.CANCELLING)

    still_active = await runs.record(run, RunUpdate(status=RunStatus.IN_PROGRESS))

    assert still_active  # the run goes on (to its stop), so its driver does too
    assert (await Run.objects.aget(pk=run.pk)).status == RunStatus.CANCELLING
