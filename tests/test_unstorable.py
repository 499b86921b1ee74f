"""Text the database cannot store (NUL characters, which PostgreSQL refuses; lone surrogates,
which no database can encode) is refused in people's input with a 400 in words, and mended in
what a model writes, streamed deltas included. A write that still cannot succeed fails the run
at once with a reason. Malformed requests get a clear 400, never a 500.

Run against PostgreSQL too: DATABASE_URL=postgres://postgres@127.0.0.1:5432/any pytest <this>.
"""

import json

import httpx
import pytest
from django.db import DataError
from django.test import Client

from assistants_app import branches, runs, services, storable
from assistants_app.engines.base import RemoteMessage, RunUpdate
from assistants_app.models import Message, Run, RunStatus, Thread

from .chat_stream import answer, streamed
from .provider_payloads import RESPONSE_ID, conversation, response
from .streamed import written
from .test_streaming import collect, drain

JSON = {"content-type": "application/json"}
NUL, HALF_AN_EMOJI = "\x00", "\ud83d"  # the first half of 😀's UTF-16 pair, alone


def raw_json(text: str) -> str:
    """{"text": text} as JSON, with any lone surrogate escaped as a browser's JSON would be."""
    return json.dumps({"text": text})


def refused_in_words(response) -> str:
    assert response.status_code == 400
    if response["Content-Type"].startswith("application/json"):
        return response.json()["error"]["message"]
    return response.content.decode()


# --- People's input ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [NUL, HALF_AN_EMOJI], ids=["nul", "lone-surrogate"])
def test_it_refuses_a_message_it_cannot_store(alice_client, alice_thread, bad):
    url = f"/threads/{alice_thread.pk}/messages/"
    as_json = alice_client.post(url, raw_json(f"hello {bad}"), content_type="application/json")
    assert "cannot be stored" in refused_in_words(as_json)
    if bad == NUL:  # a form cannot carry a lone surrogate: it is decoded with replacement
        as_form = alice_client.post(url, {"text": f"hello {bad}"})
        assert "cannot be stored" in refused_in_words(as_form)
    assert not alice_thread.messages.exists() and not alice_thread.runs.exists()


def test_it_refuses_a_title_or_a_search_it_cannot_store(alice_client, alice_thread):
    renamed = alice_client.post(f"/threads/{alice_thread.pk}/rename/", {"title": f"a{NUL}b"})
    searched = alice_client.get("/", {"q": f"a{NUL}"})
    for refused in (renamed, searched):
        assert "cannot be stored" in refused_in_words(refused)
    alice_thread.refresh_from_db()
    assert alice_thread.title == ""


def test_services_refuse_it_too(alice, alice_thread):
    with pytest.raises(services.InvalidInput):
        services.rename_thread(alice, alice_thread, f"a{HALF_AN_EMOJI}")
    with pytest.raises(services.InvalidInput):
        services.clean_text(f"a{NUL}")


@pytest.mark.parametrize("assistant_id", ["abc", "1.5", "", "٣x", "99999999999999999999999999"])
def test_a_new_thread_with_an_assistant_that_is_not_a_number_is_a_400(
    alice_client, assistant, assistant_id
):
    response = alice_client.post("/threads/new/", {"assistant": assistant_id})
    if assistant_id.isdigit():
        assert response.status_code == 404  # a number, just not an assistant of hers
    else:
        assert refused_in_words(response) == "Choose an assistant from the list."
    assert not Thread.objects.exists()


def test_json_nested_deeper_than_the_parser_goes_is_a_400(alice_client, alice_thread):
    deep = "[" * 100_000 + "]" * 100_000
    response = alice_client.post(
        f"/threads/{alice_thread.pk}/messages/", deep, content_type="application/json"
    )
    assert response.json()["error"]["code"] == "BAD_JSON"
    assert "Send the message as JSON" in refused_in_words(response)


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '"text"', "null", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_a_400(alice_client, alice_thread, body):
    response = alice_client.post(
        f"/threads/{alice_thread.pk}/messages/", body, content_type="application/json"
    )
    assert response.status_code == 400 and response.json()["error"]["message"]


def test_login_with_a_nul_in_the_username_is_refused_in_words(alice):
    response = Client().post("/login/", {"username": f"alice{NUL}", "password": "x"})
    assert "cannot be stored" in refused_in_words(response)


# --- What a model writes -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_streamed_answer_is_mended_in_deltas_and_when_stored(
    alice, alice_chat_thread, provider_mock
):
    thread = await Thread.objects.select_related("assistant").aget(pk=alice_chat_thread.pk)
    provider_mock.post("/chat/completions").mock(
        return_value=streamed(answer(f"Null{NUL}", " and half", f" {HALF_AN_EMOJI}!"))
    )
    layer, channel = await collect(thread.group_name)
    _, run = await services.submit_message(alice, thread, "Say something odd")

    await runs.drive(run.pk)

    run = await Run.objects.aget(pk=run.pk)
    assert run.status == RunStatus.COMPLETED
    stored = await thread.messages.filter(role=Message.Role.ASSISTANT).aget()
    assert stored.text == "Null and half \ufffd!"
    events = await drain(layer, channel)
    shown = written(events)  # deltas are coalesced: the stored message completes them
    assert shown and stored.text.startswith(shown)
    assert storable.is_storable(json.dumps(events, ensure_ascii=False))


@pytest.mark.django_db(transaction=True)
async def test_a_polled_answer_and_its_error_are_mended(provider_mock, started_run):
    payload = json.dumps(response("completed", text=f"A{NUL}B{HALF_AN_EMOJI}"))  # escaped
    provider_mock.get(f"/responses/{RESPONSE_ID}").mock(
        return_value=httpx.Response(200, content=payload, headers=JSON)
    )

    await runs.drive(started_run.pk)

    answer_message = await Message.objects.aget(run=started_run, role="assistant")
    assert answer_message.text == "AB\ufffd"
    failed = await Run.objects.acreate(thread=started_run.thread, status=RunStatus.QUEUED)
    failed.thread = started_run.thread
    await runs.record(
        failed, RunUpdate(status=RunStatus.FAILED, error_code="x", error_message=f"bad{NUL}")
    )
    assert (await Run.objects.aget(pk=failed.pk)).error_message == "bad"


@pytest.mark.django_db(transaction=True)
async def test_an_answer_that_cannot_be_stored_fails_the_run_at_once(started_run, caplog):
    started_run.thread = await Thread.objects.select_related("assistant").aget(
        pk=started_run.thread_id
    )  # as the driver loads it
    layer, channel = await collect(started_run.thread.group_name)
    # A hostile server's message id: mended text would not help, the key itself is refused.
    update = RunUpdate(
        status=RunStatus.COMPLETED,
        messages=[RemoteMessage(remote_id=f"msg_{HALF_AN_EMOJI}{NUL}", text="hello")],
    )

    await runs.record(started_run, update)

    run = await Run.objects.aget(pk=started_run.pk)
    assert (run.status, run.error_code) == (RunStatus.FAILED, "unstorable_answer")
    assert "could not be saved" in run.error_message
    assert run.lease_owner == "" and run.finished_at is not None
    events = await drain(layer, channel)
    assert [e["run"]["status"] for e in events if e["type"] == "run.status"] == ["failed"]
    assert caplog.text.count("could not be stored") == 1


@pytest.mark.django_db(transaction=True)
async def test_a_provider_id_the_database_refuses_fails_the_run_as_it_starts(
    alice, alice_thread, provider_mock, monkeypatch
):
    provider_mock.post("/conversations").respond(json=conversation(f"conv_{NUL}"))

    async def refused(thread):  # what PostgreSQL does with a NUL (SQLite would store it)
        raise DataError("invalid byte sequence for encoding UTF8: 0x00")

    monkeypatch.setattr(branches, "_remember", refused)
    thread = await Thread.objects.select_related("assistant").aget(pk=alice_thread.pk)

    _, run = await services.submit_message(alice, thread, "Hi")  # no error escapes

    run = await Run.objects.aget(pk=run.pk)
    assert (run.status, run.error_code) == (RunStatus.FAILED, "unstorable_answer")
    assert run.lease_owner == ""  # the thread takes the next message at once
