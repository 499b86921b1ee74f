"""Answers streamed live: coalesced deltas, resume after a break or a restart, stop mid-answer,
and the fall back to polling when a provider will not stream."""

import asyncio
import json
from datetime import timedelta

import httpx
import pytest
import respx
from channels.layers import get_channel_layer
from django.utils.timezone import now

from assistants_app import runs, services
from assistants_app.models import Message, Run, RunStatus
from assistants_app.runs import streaming

from .conftest import PROVIDER_URL
from .provider_payloads import RESPONSE_ID, conversation, response
from .streamed import ANSWER, WORDS, written

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("streaming")]
RETRIEVE = f"/responses/{RESPONSE_ID}"


def sse(events: list[dict], first_sequence: int = 0) -> bytes:
    lines = []
    for sequence, event in enumerate(events, start=first_sequence):
        event = {**event, "sequence_number": sequence}
        lines.append(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n")
    return "".join(lines).encode()


def opening() -> list[dict]:
    item = {"type": "message", "id": "msg_out1", "role": "assistant", "status": "in_progress",
            "content": []}  # fmt: skip
    return [
        {"type": "response.created", "response": response("queued")},
        {"type": "response.in_progress", "response": response("in_progress")},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", "output_index": 0, "item_id": "msg_out1",
         "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}},
    ]  # fmt: skip


def deltas(words: list[str]) -> list[dict]:
    return [
        {"type": "response.output_text.delta", "output_index": 0, "item_id": "msg_out1",
         "content_index": 0, "delta": word, "logprobs": []}
        for word in words
    ]  # fmt: skip


def completion() -> list[dict]:
    return [{"type": "response.completed", "response": response("completed", text=ANSWER)}]


def stream_response(body) -> httpx.Response:
    """The provider's answer: `body`, bytes or an async iterator of them (written over time)."""
    return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})


def is_stream(request: httpx.Request) -> bool:
    return request.url.params.get("stream") == "true"


async def collect(group: str):
    """A test channel subscribed to a thread's group, to see what the sockets would get."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return layer, channel


async def drain(layer, channel) -> list[dict]:
    events = []
    while True:
        try:
            events.append(await asyncio.wait_for(layer.receive(channel), 0.2))
        except TimeoutError:
            return events


async def test_deltas_are_coalesced_and_the_final_answer_replaces_them(started_run):
    events = opening() + deltas(WORDS) + completion()
    layer, channel = await collect(started_run.thread.group_name)
    with respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=True) as provider:
        provider.get(RETRIEVE).mock(return_value=stream_response(sse(events)))
        await runs.drive(started_run.pk)

    received = await drain(layer, channel)
    delta_events = [e for e in received if e["type"] == "message.delta"]
    assert 1 <= len(delta_events) < len(WORDS)  # many provider deltas, few frames
    assert written(delta_events) == ANSWER
    created = [e for e in received if e["type"] == "message.created"]
    assert [e["message"]["run_id"] for e in created] == [started_run.pk]
    assert received.index(created[0]) > received.index(delta_events[-1])
    await started_run.arefresh_from_db()
    assert started_run.status == RunStatus.COMPLETED
    assert started_run.partial_text == ""


async def test_a_broken_stream_resumes_after_the_last_sequence_number(started_run):
    first = opening() + deltas(WORDS[:3])  # the connection drops here
    rest = deltas(WORDS[3:]) + completion()
    requests = []

    def answer(request):
        requests.append(dict(request.url.params))
        if not is_stream(request):
            return httpx.Response(200, json=response("in_progress"))
        if "starting_after" not in request.url.params:
            return stream_response(sse(first))
        return stream_response(sse(rest, first_sequence=len(first)))

    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        provider.get(RETRIEVE).mock(side_effect=answer)
        await runs.drive(started_run.pk)

    streams = [r for r in requests if r.get("stream") == "true"]
    assert streams[1]["starting_after"] == str(len(first) - 1)
    await started_run.arefresh_from_db()
    assert started_run.status == RunStatus.COMPLETED
    assert [m.text async for m in Message.objects.filter(role="assistant")] == [ANSWER]


async def test_a_long_stream_keeps_the_runs_lease(started_run, settings):
    settings.RUN_LEASE_SECONDS = 0.3  # the answer takes three times as long
    events = opening() + deltas(WORDS[:6]) + completion()
    held = []

    async def slowly():
        for sequence, event in enumerate(events):
            if event["type"] == "response.output_text.delta":
                await asyncio.sleep(0.15)
                run = await Run.objects.aget(pk=started_run.pk)
                held.append(run.lease_owner == runs.PROCESS_ID and run.lease_expires_at > now())
            yield sse([event], first_sequence=sequence)

    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        provider.get(RETRIEVE).mock(return_value=stream_response(slowly()))
        await runs.drive(started_run.pk)

    assert held == [True] * 6  # nobody could have taken the run over meanwhile
    await started_run.arefresh_from_db()
    assert started_run.status == RunStatus.COMPLETED


def pausing(events: list[dict], after: int, pause, resumed: list) -> httpx.Response:
    """A stream that writes `after` events, then awaits `pause()` (the provider silent: a model
    thinking mid-answer), notes in `resumed` that it writes again, and writes the rest."""

    async def body():
        yield sse(events[:after])
        await pause()
        resumed.append(True)
        yield sse(events[after:], first_sequence=after)

    return stream_response(body())


async def test_text_held_when_the_provider_pauses_goes_out_during_the_pause(started_run):
    events = opening() + deltas(WORDS) + completion()
    layer, channel = await collect(started_run.thread.group_name)
    seen_in_pause: list[dict] = []

    async def pause():  # the first words arrive together; only the first goes out at once
        await asyncio.sleep(0.5)
        seen_in_pause.extend(await drain(layer, channel))

    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        provider.get(RETRIEVE).mock(return_value=pausing(events, len(opening()) + 3, pause, []))
        await runs.drive(started_run.pk)

    assert written(seen_in_pause) == "".join(WORDS[:3])  # all three, before the next word


async def test_a_pause_longer_than_the_lease_keeps_the_lease(started_run, settings):
    settings.RUN_LEASE_SECONDS = 0.3
    events = opening() + deltas(WORDS[:3]) + completion()
    held = []

    async def pause():  # three leases long
        for _ in range(3):
            await asyncio.sleep(0.3)
            run = await Run.objects.aget(pk=started_run.pk)
            held.append(run.lease_owner == runs.PROCESS_ID and run.lease_expires_at > now())

    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        provider.get(RETRIEVE).mock(return_value=pausing(events, len(opening()) + 1, pause, []))
        await runs.drive(started_run.pk)

    assert held == [True] * 3
    await started_run.arefresh_from_db()
    assert started_run.status == RunStatus.COMPLETED


async def test_a_lease_lost_in_a_pause_stops_the_follower_without_waiting_for_the_provider(
    started_run, settings
):
    settings.RUN_LEASE_SECONDS = 0.3
    events = opening() + deltas(WORDS) + completion()
    resumed: list = []

    async def pause():  # meanwhile another process took the run over (this one looked dead)
        later = now() + timedelta(seconds=60)
        await Run.objects.filter(pk=started_run.pk).aupdate(
            lease_owner="other-host:1:abc", lease_expires_at=later
        )
        await asyncio.sleep(5)

    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        stream = pausing(events, len(opening()) + 2, pause, resumed)
        provider.get(RETRIEVE).mock(return_value=stream)
        await asyncio.wait_for(runs.drive(started_run.pk), 4)

    assert resumed == []  # it stopped while the provider was still silent
    assert await Run.objects.filter(lease_owner="other-host:1:abc").aexists()  # left to it


async def test_the_stream_is_read_by_its_driver_itself(started_run):
    """No task in between that reads the stream for the driver: every event would wait a turn
    of the event loop to be handed over (BENCHMARKS.md, "Latency at saturation")."""
    readers = set()

    async def body():
        for sequence, event in enumerate(opening() + deltas(WORDS) + completion()):
            readers.add(asyncio.current_task())
            yield sse([event], first_sequence=sequence)

    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        provider.get(RETRIEVE).mock(return_value=stream_response(body()))
        await runs.drive(started_run.pk)

    assert readers == {asyncio.current_task()}


async def test_the_answer_goes_on_while_the_text_so_far_is_being_saved(started_run, monkeypatch):
    """A save waits for a database thread; those may be busy with others' work (a burst of
    reconnects): the stream's next events do not wait with it."""
    layer, channel = await collect(started_run.thread.group_name)
    save, sent_while_saving = streaming._save_partial, []

    async def slow_save(**saving):
        if not sent_while_saving:  # the first save: made as the first word goes out
            await asyncio.sleep(1)
            sent_while_saving.extend(await drain(layer, channel))
        await save(**saving)

    async def body():
        yield sse(opening() + deltas(WORDS[:1]))
        await asyncio.sleep(0.1)
        yield sse(deltas(WORDS[1:]) + completion(), first_sequence=len(opening()) + 1)

    monkeypatch.setattr(streaming, "_save_partial", slow_save)
    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        provider.get(RETRIEVE).mock(return_value=stream_response(body()))
        await runs.drive(started_run.pk)

    assert written(sent_while_saving) == ANSWER
    assert "message.created" in [e["type"] for e in sent_while_saving]
    await started_run.arefresh_from_db()
    assert started_run.status == RunStatus.COMPLETED
    assert started_run.partial_text == ""  # the save that landed after the end changed nothing


async def test_a_restarted_driver_resumes_the_saved_stream(started_run):
    already = opening() + deltas(WORDS[:2])
    await Run.objects.filter(pk=started_run.pk).aupdate(
        partial_text="".join(WORDS[:2]), stream_sequence=len(already) - 1
    )
    seen = []

    def answer(request):
        seen.append(request.url.params.get("starting_after"))
        return stream_response(sse(deltas(WORDS[2:]) + completion(), len(already)))

    layer, channel = await collect(started_run.thread.group_name)
    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        provider.get(RETRIEVE).mock(side_effect=answer)
        await runs.drive(started_run.pk)

    assert seen == [str(len(already) - 1)]
    delta_events = [e for e in await drain(layer, channel) if e["type"] == "message.delta"]
    assert delta_events[0]["offset"] == len("".join(WORDS[:2]))  # continues, no repeat


async def test_stopping_mid_stream_keeps_what_was_said_marked_as_cut_off(started_run):
    said = opening() + deltas(WORDS[:4])  # then the run is cancelled and the stream ends

    def answer(request):
        if is_stream(request):
            return stream_response(sse(said))
        return httpx.Response(200, json=response("cancelled"))  # no output returned

    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        provider.get(RETRIEVE).mock(side_effect=answer)
        await runs.drive(started_run.pk)

    await started_run.arefresh_from_db()
    assert started_run.status == RunStatus.CANCELLED
    kept = await Message.objects.aget(role="assistant")
    assert (kept.text, kept.is_partial) == ("".join(WORDS[:4]), True)
    assert kept.as_event()["partial"] is True


async def test_it_falls_back_to_polling_when_the_provider_will_not_stream(started_run):
    def answer(request):
        if is_stream(request):
            return httpx.Response(400, json={"error": {"message": "No streaming here",
                                                       "type": "invalid_request_error",
                                                       "code": "unsupported"}})  # fmt: skip
        return httpx.Response(200, json=response("completed", text=ANSWER))

    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        route = provider.get(RETRIEVE).mock(side_effect=answer)
        await runs.drive(started_run.pk)

    assert [is_stream(call.request) for call in route.calls] == [True, False]
    await started_run.arefresh_from_db()
    assert started_run.status == RunStatus.COMPLETED
    assert await Message.objects.filter(role="assistant", text=ANSWER).acount() == 1


async def test_hello_replays_the_answer_written_so_far(started_run, alice):
    from .test_consumer import communicator_for

    await Run.objects.filter(pk=started_run.pk).aupdate(
        status=RunStatus.IN_PROGRESS, partial_text="Half of it", lease_owner="elsewhere",
        lease_expires_at=None,
    )  # fmt: skip
    communicator = await communicator_for(started_run.thread, alice)
    await communicator.connect()
    last = await Message.objects.alatest("pk")

    await communicator.send_json_to({"type": "hello", "last_message_id": last.pk})

    status = await communicator.receive_json_from()
    delta = await communicator.receive_json_from()
    assert status["type"] == "run.status"
    assert delta == {
        "type": "message.delta", "run_id": started_run.pk, "offset": 0, "text": "Half of it"
    }  # fmt: skip
    await communicator.disconnect()


async def test_hello_sends_no_empty_text_for_an_answer_not_begun(started_run, alice):
    # An empty delta would tell the page text was arriving: "Writing..." over a bare cursor,
    # where nothing is written yet and "Thinking..." is the truth.
    from assistants_app.runs.leases import Lease
    from assistants_app.runs.streaming import LiveText, live_texts

    from .test_consumer import communicator_for

    await Run.objects.filter(pk=started_run.pk).aupdate(
        status=RunStatus.IN_PROGRESS, lease_owner="elsewhere",
        lease_expires_at=now() + timedelta(minutes=5),  # driven elsewhere: nobody here takes it
    )  # fmt: skip
    live_texts[started_run.pk] = LiveText(started_run, Lease(started_run.pk))  # streamed here
    try:
        communicator = await communicator_for(started_run.thread, alice)
        await communicator.connect()
        last = await Message.objects.alatest("pk")

        await communicator.send_json_to({"type": "hello", "last_message_id": last.pk})

        status = await communicator.receive_json_from()
        assert status["type"] == "run.status"
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()
    finally:
        del live_texts[started_run.pk]
        await runs.stop_driving()


async def test_a_streamed_answer_out_of_time_expires_keeping_what_it_wrote(started_run, settings):
    # The same rule as a generation here (test_runs_chat): the reader keeps what was written.
    settings.RUN_MAX_SECONDS = 0.5

    async def words_then_silence():
        yield sse(opening() + deltas(["Once", " upon"]))
        await asyncio.Event().wait()  # the model goes on thinking past the deadline

    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        provider.get(RETRIEVE, params={"stream": "true"}).mock(
            return_value=httpx.Response(
                200, content=words_then_silence(), headers={"content-type": "text/event-stream"}
            )
        )
        cancel = provider.post(f"{RETRIEVE}/cancel").respond(json=response("cancelled"))
        await asyncio.wait_for(runs.drive(started_run.pk), 5)

    await started_run.arefresh_from_db()
    assert (started_run.status, started_run.error_code) == (RunStatus.EXPIRED, "expired")
    assert cancel.called
    kept = [(m.text, m.is_partial) async for m in Message.objects.filter(run=started_run)]
    assert kept == [("Once upon", True)]


# Started here: the response is created with its stream, which this process then follows.


async def send(alice, thread) -> Run:
    """Alice sends a message in her thread; the run it starts, once its driver is done."""
    thread = await services.athread_of(alice, thread.pk)
    _, run = await services.submit_message(alice, thread, "Hi")
    if (driver := runs._driving.get(run.pk)) is not None:
        await driver.task
    await run.arefresh_from_db()
    return run


def created_streaming(request: httpx.Request) -> bool:
    return json.loads(request.content).get("stream") is True


async def test_a_run_is_streamed_by_its_create_alone(alice, alice_thread):
    layer, channel = await collect(alice_thread.group_name)
    with respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=False) as provider:
        provider.post("/conversations").respond(json=conversation())
        created = provider.post("/responses").mock(
            return_value=stream_response(sse(opening() + deltas(WORDS) + completion()))
        )
        retrieved = provider.get(RETRIEVE).respond(json=response("completed", text=ANSWER))
        run = await send(alice, alice_thread)

    sent = json.loads(created.calls.last.request.content)
    assert (sent["stream"], sent["background"], sent["store"]) == (True, True, True)
    assert created.call_count == 1
    assert not retrieved.called  # one request for the whole answer
    received = await drain(layer, channel)
    assert written([e for e in received if e["type"] == "message.delta"]) == ANSWER
    assert (run.status, run.remote_id) == (RunStatus.COMPLETED, RESPONSE_ID)
    assert [m.text async for m in Message.objects.filter(role="assistant")] == [ANSWER]


async def test_a_created_stream_that_breaks_is_resumed_after_its_last_event(alice, alice_thread):
    first = opening() + deltas(WORDS[:3])  # the connection drops here
    rest = deltas(WORDS[3:]) + completion()
    resumed = []

    def retrieve(request):
        if not is_stream(request):
            return httpx.Response(200, json=response("in_progress"))
        resumed.append(request.url.params.get("starting_after"))
        return stream_response(sse(rest, first_sequence=len(first)))

    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        provider.post("/conversations").respond(json=conversation())
        provider.post("/responses").mock(return_value=stream_response(sse(first)))
        provider.get(RETRIEVE).mock(side_effect=retrieve)
        run = await send(alice, alice_thread)

    assert resumed == [str(len(first) - 1)]
    assert run.status == RunStatus.COMPLETED
    assert [m.text async for m in Message.objects.filter(role="assistant")] == [ANSWER]


async def test_a_provider_that_will_not_stream_a_create_gets_it_plainly(alice, alice_thread):
    def create(request):
        if created_streaming(request):
            return httpx.Response(400, json={"error": {"message": "No streaming here",
                                                       "type": "invalid_request_error",
                                                       "code": "unsupported"}})  # fmt: skip
        return httpx.Response(200, json=response("queued"))

    events = opening() + deltas(WORDS) + completion()
    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        provider.post("/conversations").respond(json=conversation())
        created = provider.post("/responses").mock(side_effect=create)
        provider.get(RETRIEVE).mock(return_value=stream_response(sse(events)))
        run = await send(alice, alice_thread)

    assert [created_streaming(call.request) for call in created.calls] == [True, False]
    assert run.status == RunStatus.COMPLETED
    assert [m.text async for m in Message.objects.filter(role="assistant")] == [ANSWER]


async def test_a_provider_that_ignores_stream_on_a_create_is_followed_all_the_same(
    alice, alice_thread
):
    events = opening() + deltas(WORDS) + completion()
    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        provider.post("/conversations").respond(json=conversation())
        created = provider.post("/responses").respond(json=response("queued"))
        provider.get(RETRIEVE).mock(return_value=stream_response(sse(events)))
        run = await send(alice, alice_thread)

    assert created.call_count == 1
    assert run.status == RunStatus.COMPLETED
    assert [m.text async for m in Message.objects.filter(role="assistant")] == [ANSWER]


async def test_a_start_that_cannot_be_stored_lets_go_of_its_stream(
    alice, alice_thread, monkeypatch
):
    """The database refuses the start (SQLite busy past its retries): the run is handed on
    to the next driver, and the stream opened by its create is closed, not kept open here."""
    from django.db import OperationalError

    from assistants_app.engines import responses as engine
    from assistants_app.runs import starting

    async def refused(run, update, **how):
        raise OperationalError("database is locked")

    monkeypatch.setattr(starting, "record", refused)
    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        provider.post("/conversations").respond(json=conversation())
        provider.post("/responses").mock(
            return_value=stream_response(sse(opening() + deltas(WORDS) + completion()))
        )
        thread = await services.athread_of(alice, alice_thread.pk)
        _, run = await services.submit_message(alice, thread, "Hi")

    assert run.pk not in engine._held_streams
    assert run.pk not in runs._driving  # handed on, not driven from here
