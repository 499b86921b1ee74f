"""The thread websocket under hostile or clumsy clients: foreign origins, oversized frames,
malformed events and too many sockets get a refusal or an `error` event, never a crash."""

import json

import pytest
from websockets.exceptions import ConnectionClosed

from assistants_app import limits
from assistants_app.models import Message

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


async def test_a_clean_exit_takes_its_sockets_out_of_the_counts(alice, bob, settings):
    settings.WEBSOCKETS_PER_USER = 2
    assert await limits.open_socket(alice) and await limits.open_socket(alice)
    assert await limits.open_socket(bob)
    assert not await limits.open_socket(alice)

    limits.close_all_sockets()  # what atexit runs when daphne stops

    assert await limits.open_socket(alice) and await limits.open_socket(alice)  # tabs get back
    limits.close_all_sockets()


@pytest.mark.slow
async def test_daphne_itself_drops_an_oversized_frame(tmp_path, settings):
    padding = "x" * settings.WEBSOCKET_MAX_MESSAGE_BYTES
    with start_site(tmp_path) as site:
        alice = SiteClient(site, "alice")
        async with alice.websocket(alice.start_thread()) as socket:
            await socket.send(json.dumps({"type": "hello", "padding": padding}))
            # Autobahn drops the connection; without daphne's limit the consumer would have
            # answered with an `error` event first.
            with pytest.raises(ConnectionClosed):
                await socket.recv()
