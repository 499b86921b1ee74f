"""Posting a message over the thread's websocket (`message.send`): what the HTTP post does,
answered on the socket by `message.sent` or an `error` carrying the page's ref; refused as
the post refuses, and only ever into the socket's own thread, by whoever is signed in now."""

import asyncio

import pytest
import respx
from asgiref.sync import sync_to_async
from django.contrib.sessions.models import Session

from assistants_app import services
from assistants_app.models import Message, Thread

from .conftest import PROVIDER_URL
from .provider_payloads import conversation, response
from .sockets import communicator

pytestmark = pytest.mark.django_db(transaction=True)


async def open_socket(thread, cookie):
    socket = communicator(f"/ws/threads/{thread.pk}/", cookie)
    assert (await socket.connect())[0]
    return socket


async def answer_to(socket, ref: str) -> dict:
    """The `message.sent` or `error` answering the send `ref`; other events are skipped."""
    while True:
        event = await socket.receive_json_from(timeout=5)
        if event["type"] in ("message.sent", "error") and event.get("ref") == ref:
            return event


async def next_error(socket) -> dict:
    while (event := await socket.receive_json_from(timeout=5))["type"] != "error":
        pass
    return event


async def close_code(socket) -> int:
    while (output := await socket.receive_output(timeout=5))["type"] != "websocket.close":
        pass
    return output["code"]


async def drained(socket) -> list[dict]:
    """The events still arriving, until the socket has been quiet a moment."""
    events = []
    while not await socket.receive_nothing(timeout=0.3):
        events.append(await socket.receive_json_from())
    return events


def send(text="Hello", ref="r1", **more) -> dict:
    return {"type": "message.send", "ref": ref, "text": text, **more}


@pytest.fixture
def provider_still_answering():
    """A provider whose runs stay queued: the thread's run stays active all test long."""
    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        provider.post("/conversations").respond(json=conversation())
        provider.post("/responses").respond(json=response("queued"))
        provider.get(url__regex=r"/responses/").respond(json=response("queued"))
        yield provider


async def test_a_message_sent_over_the_socket_is_stored_answered_and_names_the_thread(
    alice_thread, alice_cookie, answering_provider
):
    socket = await open_socket(alice_thread, alice_cookie)

    await socket.send_json_to(send("Plan a *trip*\nto Lisbon", ref="send-1"))
    sent = await answer_to(socket, "send-1")
    answer = await _next_assistant_message(socket)
    await socket.disconnect()

    assert sent["type"] == "message.sent"
    assert sent["message"]["text"] == "Plan a *trip*\nto Lisbon"
    assert sent["thread"] == {"title": "Plan a *trip*"}
    assert "Hi!" in answer["html"] and answer["run_id"] == sent["run"]["id"]
    stored = [m async for m in Message.objects.filter(thread=alice_thread).order_by("pk")]
    assert [(m.role, m.text) for m in stored] == [
        ("user", "Plan a *trip*\nto Lisbon"),
        ("assistant", "Hi!"),
    ]


async def _next_assistant_message(socket) -> dict:
    while True:
        event = await socket.receive_json_from(timeout=5)
        if event["type"] == "message.created" and event["message"]["role"] == "assistant":
            return event["message"]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"text": "   "}, "EMPTY_MESSAGE"),
        ({"text": None}, "EMPTY_MESSAGE"),
        ({"text": "x" * 101}, "MESSAGE_TOO_LONG"),
        ({"text": "a\x00b"}, "UNSTORABLE_CHARACTERS"),
        ({"attachments": "not a list"}, "BAD_ATTACHMENTS"),
        ({"attachments": [{"id": 1}]}, "BAD_ATTACHMENTS"),
        ({"attachments": [987654]}, "ATTACHMENT_GONE"),
    ],
)
async def test_a_bad_send_is_refused_in_words_with_its_ref_and_stores_nothing(
    alice_thread, alice_cookie, settings, fields, code
):
    settings.MESSAGE_MAX_CHARS = 100
    socket = await open_socket(alice_thread, alice_cookie)

    await socket.send_json_to({**send(ref="bad-1"), **fields})
    refused = await answer_to(socket, "bad-1")
    await socket.send_json_to({"type": "probe"})
    still_open = await next_error(socket)
    await socket.disconnect()

    assert refused["type"] == "error" and refused["code"] == code
    assert refused["message"].endswith(".")  # a sentence for the page to show
    assert still_open["code"] == "UNKNOWN_EVENT"
    assert await Message.objects.filter(thread=alice_thread).acount() == 0


@pytest.mark.parametrize("ref", [None, "", 7, "has space", "x" * 65, "é", "<b>"])
async def test_a_send_without_a_proper_ref_is_refused_unsent(alice_thread, alice_cookie, ref):
    socket = await open_socket(alice_thread, alice_cookie)

    await socket.send_json_to(send(ref=ref))
    refused = await next_error(socket)
    await socket.disconnect()

    assert refused["code"] == "BAD_REF" and "ref" not in refused
    assert await Message.objects.filter(thread=alice_thread).acount() == 0


async def test_a_send_bigger_than_a_websocket_message_closes_the_socket(
    alice_thread, alice_cookie, settings
):
    settings.MESSAGE_MAX_CHARS = 100_000  # the frame, not the message, is too long
    socket = await open_socket(alice_thread, alice_cookie)

    await socket.send_json_to(send("x" * 17_000))
    refused = await next_error(socket)
    code = await close_code(socket)

    assert (refused["code"], code) == ("FRAME_TOO_LARGE", 1009)
    assert await Message.objects.filter(thread=alice_thread).acount() == 0


async def test_a_failure_the_page_cannot_fix_is_a_retryable_error_not_a_closed_socket(
    alice_thread, alice_cookie, monkeypatch
):
    async def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(services, "send_message", broken)
    socket = await open_socket(alice_thread, alice_cookie)

    await socket.send_json_to(send(ref="r9"))
    failed = await answer_to(socket, "r9")
    nothing_closed = await socket.receive_nothing(timeout=0.2)
    await socket.disconnect()

    assert failed["code"] == "SEND_FAILED" and "Try again" in failed["message"]
    assert nothing_closed


@sync_to_async
def sign_out(alice, how: str) -> None:
    if how == "logged out":
        Session.objects.all().delete()
    elif how == "password changed":
        alice.set_password("a-new-password-7")
        alice.save()
    else:
        alice.is_active = False
        alice.save()


@pytest.mark.parametrize("how", ["logged out", "password changed", "deactivated"])
async def test_a_socket_whose_user_signed_out_since_it_opened_cannot_post(
    alice, alice_thread, alice_cookie, how
):
    socket = await open_socket(alice_thread, alice_cookie)
    await sign_out(alice, how)

    await socket.send_json_to(send())
    code = await close_code(socket)

    assert code == 4401
    assert await Message.objects.filter(thread=alice_thread).acount() == 0


async def test_a_send_to_a_thread_deleted_since_the_socket_opened_closes_it(
    alice_thread, alice_cookie
):
    socket = await open_socket(alice_thread, alice_cookie)
    await alice_thread.adelete()

    await socket.send_json_to(send())

    assert await close_code(socket) == 4404
    assert await Message.objects.acount() == 0


async def test_a_send_goes_only_to_the_sockets_own_thread(
    alice_thread, bob_thread, bob_cookie, answering_provider
):
    socket = await open_socket(bob_thread, bob_cookie)

    # Fields naming another thread are not read: the socket's thread is where it goes.
    await socket.send_json_to(send("Mine", thread=alice_thread.pk, thread_id=alice_thread.pk))
    sent = await answer_to(socket, "r1")
    await socket.disconnect()

    assert sent["type"] == "message.sent"
    assert await Message.objects.filter(thread=alice_thread).acount() == 0
    assert await Message.objects.filter(thread=bob_thread, text="Mine").aexists()


async def test_a_burst_of_sends_from_three_tabs_stores_one_message_and_answers_each_once(
    alice_thread, alice_cookie, provider_still_answering
):
    tabs = [await open_socket(alice_thread, alice_cookie) for _ in range(3)]

    async def burst(tab, name):
        refs = [f"{name}-{n}" for n in range(8)]
        await asyncio.gather(*(tab.send_json_to(send(f"Hi {ref}", ref)) for ref in refs))
        return [await answer_to(tab, ref) for ref in refs]

    answers = sum(await asyncio.gather(*(burst(t, f"tab{i}") for i, t in enumerate(tabs))), [])
    late = [event for tab in tabs for event in await drained(tab) if "ref" in event]
    for tab in tabs:
        await tab.disconnect()

    kinds = [a["type"] if a["type"] == "message.sent" else a["code"] for a in answers]
    assert len(answers) == 24 and kinds.count("message.sent") == 1
    assert set(kinds) <= {"message.sent", "RUN_ACTIVE", "TOO_MANY_SENDS"}
    assert await Message.objects.filter(thread=alice_thread).acount() == 1
    assert await Thread.objects.filter(pk=alice_thread.pk, title__startswith="Hi tab").aexists()
    assert late == [], "no tab gets a second answer to any send"
