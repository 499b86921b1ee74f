"""The thread websocket: who may connect, what it pushes, what it replays."""

import pytest
import respx
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from assistants_app.models import Message, Run, RunStatus
from chatsite.asgi import application

from .conftest import PROVIDER_URL
from .provider_payloads import RESPONSE_ID, response

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def communicator_for(thread, user=None):
    """A websocket to the thread through the full ASGI stack, logged in as `user` if given."""
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    if user is not None:
        headers.append((b"cookie", await session_cookie(user)))
    return WebsocketCommunicator(application, f"/ws/threads/{thread.pk}/", headers=headers)


async def receive_until(communicator, event_type, **match):
    while True:
        event = await communicator.receive_json_from(timeout=5)
        if event["type"] == event_type and all(
            event.get(key, {}).get(k) == v for key, value in match.items() for k, v in value.items()
        ):
            return event


async def test_it_refuses_anonymous_visitors(alice_thread):
    communicator = await communicator_for(alice_thread)
    connected, code = await communicator.connect()
    if connected:
        assert (await communicator.receive_output())["code"] == 4401
    else:
        assert code == 4401
    await communicator.disconnect()


async def test_it_refuses_another_users_thread(alice_thread, bob):
    communicator = await communicator_for(alice_thread, bob)
    connected, code = await communicator.connect()
    output = await communicator.receive_output() if connected else {"code": code}
    assert output == {"type": "websocket.close", "code": 4404}
    await communicator.disconnect()


async def test_it_refuses_a_foreign_origin(alice_thread, alice):
    communicator = await communicator_for(alice_thread, alice)
    communicator.scope["headers"] = [
        (name, b"https://evil.example" if name == b"origin" else value)
        for name, value in communicator.scope["headers"]
    ]
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()


async def test_the_owner_gets_the_answer_pushed(alice_thread, alice):
    prompt = await Message.objects.acreate(thread=alice_thread, role="user", text="Hi")
    run = await Run.objects.acreate(
        thread=alice_thread, prompt=prompt, remote_id=RESPONSE_ID, status=RunStatus.QUEUED
    )
    with respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=True) as provider:
        provider.get(f"/responses/{RESPONSE_ID}").respond(
            json=response("completed", text="Pushed *live*")
        )
        communicator = await communicator_for(alice_thread, alice)
        connected, _ = await communicator.connect()
        assert connected

        created = await receive_until(communicator, "message.created")
        status = await receive_until(communicator, "run.status")

    assert created["message"]["role"] == "assistant"
    assert created["message"]["html"] == "<p>Pushed <em>live</em></p>\n"
    assert created["message"]["run_id"] == run.pk
    assert status["run"]["status"] == "completed"
    assert status["run"]["is_terminal"] is True
    await communicator.disconnect()


async def test_hello_replays_what_the_client_missed(alice_thread, alice):
    seen = await Message.objects.acreate(thread=alice_thread, role="user", text="Seen")
    missed = await Message.objects.acreate(thread=alice_thread, role="assistant", text="Missed")
    run = await Run.objects.acreate(thread=alice_thread, status=RunStatus.COMPLETED)
    communicator = await communicator_for(alice_thread, alice)
    await communicator.connect()

    await communicator.send_json_to({"type": "hello", "last_message_id": seen.pk})

    replayed = await communicator.receive_json_from()
    assert replayed["type"] == "message.created"
    assert replayed["message"]["id"] == missed.pk
    latest = await communicator.receive_json_from()
    assert latest == {"type": "run.status", "run": (await Run.objects.aget(pk=run.pk)).as_event()}
    assert await communicator.receive_nothing()
    await communicator.disconnect()


async def test_hello_without_a_last_id_replays_everything(alice_thread, alice):
    for text in ("one", "two"):
        await Message.objects.acreate(thread=alice_thread, role="user", text=text)
    communicator = await communicator_for(alice_thread, alice)
    await communicator.connect()

    await communicator.send_json_to({"type": "hello", "last_message_id": None})

    first = await communicator.receive_json_from()
    second = await communicator.receive_json_from()
    assert [first["message"]["text"], second["message"]["text"]] == ["one", "two"]
    await communicator.disconnect()


@pytest.mark.parametrize(
    "frame, code",
    [
        ("not json", "BAD_JSON"),
        ("[1, 2]", "BAD_JSON"),
        ('{"type": "launch_missiles"}', "UNKNOWN_EVENT"),
        ('{"type": "hello", "last_message_id": "x"}', "BAD_LAST_MESSAGE_ID"),
    ],
)
async def test_it_answers_bad_events_with_an_error_and_stays_open(alice_thread, alice, frame, code):
    communicator = await communicator_for(alice_thread, alice)
    await communicator.connect()

    await communicator.send_to(text_data=frame)
    assert (await communicator.receive_json_from())["code"] == code

    await communicator.send_json_to({"type": "hello", "last_message_id": None})
    assert await communicator.receive_nothing()  # still open, nothing to replay
    await communicator.disconnect()
