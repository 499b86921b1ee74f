"""The thread websocket under hostile or clumsy clients: foreign origins, oversized frames,
malformed events and too many sockets get a refusal or an `error` event, never a crash."""

import json

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from assistants_app import consumers
from assistants_app.framing import Reassembler
from assistants_app.models import Message, Run, RunStatus

from .live import SiteClient, start_site
from .sockets import communicator, refusal

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def path(alice_thread):
    return f"/ws/threads/{alice_thread.pk}/"


@pytest.mark.parametrize("origin", ["https://evil.example", None])
async def test_it_refuses_a_foreign_or_missing_origin(path, alice_cookie, origin):
    socket = communicator(path, alice_cookie, origin=origin)
    connected, _ = await socket.connect()
    assert not connected


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"text_data": "{not json"}, "BAD_JSON"),
        ({"text_data": "[1, 2]"}, "BAD_JSON"),
        ({"bytes_data": b'{"type": "hello"}'}, "BAD_FRAME"),
        ({"text_data": '{"type": "shutdown"}'}, "UNKNOWN_EVENT"),
        ({"text_data": '{"no": "type"}'}, "UNKNOWN_EVENT"),
        ({"text_data": '{"type": "hello", "last_message_id": "1 OR 1=1"}'}, "BAD_LAST_MESSAGE_ID"),
    ],
)
async def test_it_answers_a_bad_event_with_an_error_and_stays_open(
    path, alice_cookie, alice_thread, frame, code
):
    message = await Message.objects.acreate(thread=alice_thread, role="user", text="Hi")
    socket = communicator(path, alice_cookie)
    assert (await socket.connect())[0]

    await socket.send_to(**frame)
    error = await socket.receive_json_from()
    assert error["type"] == "error" and error["code"] == code and error["message"]

    await socket.send_json_to({"type": "hello", "last_message_id": None})
    replayed = await socket.receive_json_from()
    assert replayed["type"] == "message.created" and replayed["message"]["id"] == message.pk
    await socket.disconnect()


@pytest.mark.parametrize("frame", ["text_data", "bytes_data"])
async def test_it_closes_on_an_oversized_frame(path, alice_cookie, settings, frame):
    settings.WEBSOCKET_MAX_MESSAGE_BYTES = 1000
    socket = communicator(path, alice_cookie)
    assert (await socket.connect())[0]
    hello = json.dumps({"type": "hello", "padding": "x" * 1000})
    await socket.send_to(**{frame: hello if frame == "text_data" else hello.encode()})

    error = await socket.receive_json_from()
    assert error["type"] == "error" and error["code"] == "FRAME_TOO_LARGE"
    assert (await socket.receive_output())["code"] == 1009
    await socket.disconnect()


async def test_it_takes_a_frame_at_the_limit(path, alice_cookie, settings):
    settings.WEBSOCKET_MAX_MESSAGE_BYTES = 1000
    socket = communicator(path, alice_cookie)
    assert (await socket.connect())[0]
    hello = json.dumps({"type": "hello", "last_message_id": None, "padding": ""})
    await socket.send_to(text_data=hello[:-2] + "x" * (1000 - len(hello)) + '"}')
    assert await socket.receive_nothing(timeout=0.2)  # no error, nothing to replay
    await socket.disconnect()


async def test_it_limits_open_sockets_per_user(
    path, alice_cookie, bob_cookie, bob_thread, settings
):
    settings.WEBSOCKETS_PER_USER = 2
    first, second = communicator(path, alice_cookie), communicator(path, alice_cookie)
    assert (await first.connect())[0] and (await second.connect())[0]

    assert await refusal(path, alice_cookie) == 4429
    assert await refusal(f"/ws/threads/{bob_thread.pk}/", bob_cookie) is None  # bob has his own

    await first.disconnect()
    assert await refusal(path, alice_cookie) is None  # a closed socket frees its slot
    await second.disconnect()


async def test_refused_sockets_do_not_use_up_the_limit(path, bob_cookie, bob_thread, settings):
    settings.WEBSOCKETS_PER_USER = 1
    for _ in range(3):
        assert await refusal(path, bob_cookie) == 4404  # alice's thread
    assert await refusal(f"/ws/threads/{bob_thread.pk}/", bob_cookie) is None


@pytest.mark.parametrize(
    "frame",
    [
        "[" * 5000 + "]" * 5000,  # nested deeper than Python's json will go
        '{"type": "hello", "last_message_id": ' + "[" * 3000 + "]" * 3000 + "}",
        '"\\ud800"',  # a lone surrogate, escaped
        '{"type": "hello", "last_message_id": true}',
        '{"type": "hello", "last_message_id": 1e400}',
        '{"type": ' + '"x' * 2000 + '"}',
    ],
    ids=["nested", "nested id", "surrogate", "true", "infinite", "long type"],
)
async def test_it_answers_odd_json_with_an_error(path, alice_cookie, frame):
    socket = communicator(path, alice_cookie)
    assert (await socket.connect())[0]

    await socket.send_to(text_data=frame)
    error = await socket.receive_json_from()
    assert error["type"] == "error" and error["code"].startswith(("BAD_", "UNKNOWN_"))
    assert len(error["message"]) < 200  # the frame is not echoed back
    await socket.disconnect()


@pytest.mark.parametrize(
    "path", ["/ws/threads/abc/", "/ws/threads/1e3/", "/ws/threads/-1/", "/ws/threads/", "/ws/"]
)
async def test_a_path_that_is_no_thread_is_refused_with_4404(path, alice_cookie):
    assert await refusal(path, alice_cookie) == 4404


async def test_a_thread_id_too_big_for_the_database_is_refused_with_4404(alice_cookie):
    assert await refusal("/ws/threads/99999999999999999999999999/", alice_cookie) == 4404


async def test_a_hello_replays_a_long_backlog_a_page_at_a_time(path, alice_cookie, alice_thread):
    await Message.objects.abulk_create(
        Message(thread=alice_thread, role="user", text=f"message {n}") for n in range(120)
    )
    await Run.objects.acreate(thread=alice_thread, status=RunStatus.COMPLETED)
    socket = communicator(path, alice_cookie)
    assert (await socket.connect())[0]

    pages, last_id = [], None
    while True:
        await socket.send_json_to({"type": "hello", "last_message_id": last_id})
        page = await receive_page(socket)
        pages.append([e["message"]["text"] for e in page if e["type"] == "message.created"])
        if page[-1]["type"] == "run.status":
            break
        assert page[-1]["type"] == "replay.more"
        last_id = page[-1]["last_message_id"]

    assert [len(page) for page in pages] == [50, 50, 20]
    assert sum(pages, []) == [f"message {n}" for n in range(120)]
    await socket.disconnect()


async def test_a_page_of_long_answers_stops_early_but_always_holds_one(
    path, alice_cookie, alice_thread
):
    long = "word " * (consumers.REPLAY_PAGE_CHARS // 5 * 2 // 3)  # two thirds of a page
    await Message.objects.abulk_create(
        Message(thread=alice_thread, role="assistant", text=long) for _ in range(2)
    )
    socket = communicator(path, alice_cookie)
    assert (await socket.connect())[0]

    await socket.send_json_to({"type": "hello", "last_message_id": None})
    first = await receive_page(socket)
    assert [e["type"] for e in first] == ["message.created", "replay.more"]
    await socket.send_json_to({"type": "hello", "last_message_id": first[-1]["last_message_id"]})
    second = await receive_page(socket)
    assert [e["type"] for e in second] == ["message.created"]  # no run: nothing more to say
    await socket.disconnect()


async def test_hellos_are_rate_limited_per_socket(path, alice_cookie, alice_thread):
    await Message.objects.acreate(thread=alice_thread, role="user", text="Hi")
    socket = communicator(path, alice_cookie)
    assert (await socket.connect())[0]

    for _ in range(consumers.REPLAY_BURST * 5):
        await socket.send_json_to({"type": "hello", "last_message_id": None})
    answers = [await receive_event(socket) for _ in range(consumers.REPLAY_BURST * 5)]

    replays = [e for e in answers if e["type"] == "message.created"]
    refusals = [e for e in answers if e["type"] == "error"]
    assert len(replays) == consumers.REPLAY_BURST
    assert {e["code"] for e in refusals} == {"TOO_MANY_HELLOS"}
    assert all(0 < e["retry_after"] <= 60 for e in refusals)
    await socket.disconnect()


async def test_long_replays_use_up_the_hellos_faster(path, alice_cookie, alice_thread, monkeypatch):
    monkeypatch.setattr(consumers, "REPLAY_PAGE_CHARS", 1000)
    await Message.objects.acreate(thread=alice_thread, role="user", text="x" * 5000)
    socket = communicator(path, alice_cookie)
    assert (await socket.connect())[0]

    for _ in range(consumers.REPLAY_BURST):
        await socket.send_json_to({"type": "hello", "last_message_id": None})
    answers = [await receive_event(socket) for _ in range(consumers.REPLAY_BURST)]

    replays = [e for e in answers if e["type"] == "message.created"]
    assert 2 <= len(replays) < consumers.REPLAY_BURST // 2  # each counted as five pages
    await socket.disconnect()


async def test_an_event_bigger_than_a_message_goes_in_parts(path, alice_cookie, alice_thread):
    text = "Съешь же ещё этих мягких французских булок. " * 2000  # 90 KB, 6 bytes a letter
    await Message.objects.acreate(thread=alice_thread, role="assistant", text=text)
    socket = communicator(path, alice_cookie)
    assert (await socket.connect())[0]

    await socket.send_json_to({"type": "hello", "last_message_id": None})
    parts, event = Reassembler(), None
    while event is None:
        output = await socket.receive_output()
        assert len(output["text"].encode()) <= 16384  # what daphne lets through
        event = parts.feed(output["text"])

    assert event["type"] == "message.created" and text.strip() in event["message"]["html"]
    await socket.disconnect()


async def receive_event(socket) -> dict:
    parts = Reassembler()
    while (event := parts.feed(await socket.receive_from())) is None:
        pass
    return event


async def receive_page(socket) -> list[dict]:
    """The events of one hello's replay: up to `replay.more`, or up to the quiet after it."""
    events = [await receive_event(socket)]
    while events[-1]["type"] != "replay.more" and not await socket.receive_nothing(0.1):
        events.append(await receive_event(socket))
    return events


@pytest.mark.slow
async def test_through_daphne_bad_frames_and_paths_get_their_close_codes(tmp_path, settings):
    limit = settings.WEBSOCKET_MAX_MESSAGE_BYTES
    with start_site(tmp_path) as site:
        alice = SiteClient(site, "alice")
        thread_id = alice.start_thread()
        for padding in (limit, 1_000_000):  # just over the limit, and far over it
            async with alice.websocket(thread_id) as socket:
                await socket.send(json.dumps({"type": "hello", "padding": "x" * padding}))
                with pytest.raises(ConnectionClosed) as closed:
                    await socket.recv()
                assert closed.value.rcvd.code == 1009  # not 1006, a dropped connection

        async with alice.websocket(thread_id) as socket:  # the limit is the limit...
            await socket.send(json.dumps({"type": "ping", "x": "x" * (limit - 30)}))
            assert json.loads(await socket.recv())["code"] == "UNKNOWN_EVENT"  # ...not below

        cookies = "; ".join(f"{name}={value}" for name, value in alice.http.cookies.items())
        url = site.url.replace("http", "ws", 1)
        headers = {"Cookie": cookies, "Origin": site.url}
        async with websockets.connect(url + "/ws/threads/abc/", additional_headers=headers) as s:
            with pytest.raises(ConnectionClosed) as closed:
                await s.recv()
            assert closed.value.rcvd.code == 4404  # not a handshake answered with 500

        # A page on another port of the same host gets no socket (daphne answers 403).
        other_port = {**headers, "Origin": site.url.rsplit(":", 1)[0] + ":1"}
        alices_thread = f"{url}/ws/threads/{thread_id}/"
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(alices_thread, additional_headers=other_port)
        assert refused.value.response.status_code == 403


async def test_an_event_that_cannot_be_sent_is_skipped_not_fatal(
    path, alice_cookie, alice_thread, monkeypatch, caplog
):
    await Message.objects.acreate(thread=alice_thread, role="assistant", text="Unsendable")
    await Run.objects.acreate(thread=alice_thread, status=RunStatus.COMPLETED)
    socket = communicator(path, alice_cookie)
    assert (await socket.connect())[0]
    real_frames = consumers.frames

    def failing_frames(event, max_bytes):
        if event["type"] == "message.created":  # as daphne's PayloadExceededError would
            raise ValueError("tried to send WebSocket message exceeding payload limit")
        return real_frames(event, max_bytes)

    monkeypatch.setattr(consumers, "frames", failing_frames)
    await socket.send_json_to({"type": "hello", "last_message_id": None})

    # The socket stays open and goes on (closing it would only bring the same replay back).
    assert (await socket.receive_json_from())["type"] == "run.status"
    assert "could not send a 'message.created' event" in caplog.text
    await socket.disconnect()
