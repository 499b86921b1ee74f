"""The run driver survives what people and providers do: leases, takeovers, faults, expiry."""

import asyncio
from datetime import timedelta

import httpx
import pytest
import respx
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.core.management import call_command
from django.utils import timezone

from assistants_app import runs
from assistants_app.engines.base import RemoteMessage, RunUpdate
from assistants_app.models import Message, Run, RunStatus
from assistants_app.runs import pacing

from .conftest import PROVIDER_URL
from .provider_payloads import RESPONSE_ID, api_error, conversation, response

pytestmark = pytest.mark.django_db(transaction=True)
RETRIEVE = f"/responses/{RESPONSE_ID}"


@pytest.fixture
def provider():
    with respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=False) as mock:
        yield mock


def leased_elsewhere(run, seconds):
    Run.objects.filter(pk=run.pk).update(
        lease_owner="other-host:1:abc", lease_expires_at=timezone.now() + timedelta(seconds=seconds)
    )


async def test_it_leaves_a_run_another_process_drives_alone(provider, started_run):
    retrieve = provider.get(RETRIEVE).respond(json=response("completed", text="x"))
    await sync_to_async(leased_elsewhere)(started_run, 60)

    await runs.drive(started_run.pk)

    assert not retrieve.called
    await started_run.arefresh_from_db()
    assert started_run.status == RunStatus.QUEUED


async def test_a_standby_driver_takes_over_when_the_other_lease_runs_out(
    provider, started_run, settings
):
    settings.RUN_LEASE_SECONDS = 0.3
    provider.get(RETRIEVE).respond(json=response("completed", text="Taken over"))
    await sync_to_async(leased_elsewhere)(started_run, 0.2)

    await runs.drive(started_run.pk, standby=True)

    await started_run.arefresh_from_db()
    assert started_run.status == RunStatus.COMPLETED
    assert await Message.objects.filter(text="Taken over").acount() == 1


async def test_a_run_being_started_is_not_taken_for_an_interrupted_one(provider, alice_thread):
    retrieve = provider.get(RETRIEVE).respond(json=response("completed", text="x"))
    run = await Run.objects.acreate(thread=alice_thread, **runs.starting_lease())

    await runs.drive(run.pk)

    await run.arefresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert not retrieve.called


async def test_a_run_whose_start_was_interrupted_fails_with_a_reason(alice_thread):
    run = await Run.objects.acreate(thread=alice_thread)  # no provider id, no lease

    await runs.drive(run.pk)

    await run.arefresh_from_db()
    assert (run.status, run.error_code) == (RunStatus.FAILED, "interrupted")


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, json=api_error("Internal error", "server_error", "server_error")),
        httpx.Response(503, text="upstream unavailable"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message"),
        httpx.ConnectError("connection refused"),
    ],
    ids=["500", "503", "timeout", "dropped-connection", "connection-refused"],
)
async def test_it_retries_transient_failures_and_finishes(provider, started_run, failure):
    retrieve = provider.get(RETRIEVE).mock(
        side_effect=[failure, failure, httpx.Response(200, json=response("completed", text="Ok"))]
    )

    await runs.drive(started_run.pk)

    await started_run.arefresh_from_db()
    assert retrieve.call_count == 3
    assert started_run.status == RunStatus.COMPLETED


async def test_it_honours_retry_after(provider, started_run, monkeypatch):
    slept = []
    real_sleep = asyncio.sleep

    async def recording_sleep(seconds):
        slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", recording_sleep)
    provider.get(RETRIEVE).mock(
        side_effect=[
            httpx.Response(429, json=api_error("Slow down", "rate_limit_exceeded"),
                           headers={"retry-after": "7"}),
            httpx.Response(200, json=response("completed", text="Ok")),
        ]
    )  # fmt: skip

    await runs.drive(started_run.pk)

    assert slept[0] == 7.0


async def test_it_gives_up_after_repeated_failures_with_a_readable_reason(
    provider, started_run, monkeypatch
):
    monkeypatch.setattr(pacing, "MAX_CONSECUTIVE_PROVIDER_ERRORS", 3)
    monkeypatch.setattr(pacing, "retry_delay", lambda attempt, retry_after: 0)
    provider.get(RETRIEVE).mock(side_effect=httpx.ReadTimeout("timed out"))

    await runs.drive(started_run.pk)

    await started_run.arefresh_from_db()
    assert started_run.status == RunStatus.FAILED
    assert started_run.error_code == "timeout"
    assert started_run.error_message == "The provider did not answer in time."


async def test_a_run_past_its_time_limit_expires_and_is_cancelled(provider, started_run, settings):
    settings.RUN_MAX_SECONDS = 0.3
    provider.get(RETRIEVE).respond(json=response("in_progress"))
    cancel = provider.post(f"{RETRIEVE}/cancel").respond(json=response("cancelled"))

    await runs.drive(started_run.pk)

    await started_run.arefresh_from_db()
    assert started_run.status == RunStatus.EXPIRED
    assert "No answer after" in started_run.error_message
    assert cancel.called


async def test_a_locked_conversation_at_start_is_tried_again(provider, alice_thread, monkeypatch):
    monkeypatch.setattr(pacing, "retry_delay", lambda attempt, retry_after: 0)
    provider.post("/conversations").respond(json=conversation())
    create = provider.post("/responses").mock(
        side_effect=[
            httpx.Response(409, json=api_error("Conversation is locked.", "conversation_locked")),
            httpx.Response(200, json=response("queued")),
        ]
    )
    prompt = await Message.objects.acreate(thread=alice_thread, role="user", text="Hi")
    run = await Run.objects.acreate(thread=alice_thread, prompt=prompt, **runs.starting_lease())
    run.thread = alice_thread

    await runs.start(run, prompt)

    await run.arefresh_from_db()
    assert create.call_count == 2
    # Started, and driven by the process that started it.
    assert (run.status, run.remote_id) == (RunStatus.QUEUED, RESPONSE_ID)
    assert run.lease_owner == runs.leases.PROCESS_ID


def test_the_worker_finishes_orphaned_runs(provider, started_run, alice_thread):
    provider.get(RETRIEVE).respond(json=response("completed", text="Finished by the worker"))
    leased_elsewhere(started_run, -1)  # its process died: the lease ran out

    call_command("run_worker", "--once")

    started_run.refresh_from_db()
    assert started_run.status == RunStatus.COMPLETED
    assert Message.objects.filter(text="Finished by the worker").count() == 1


def test_the_worker_leaves_runs_with_a_live_lease_alone(provider, started_run):
    retrieve = provider.get(RETRIEVE).respond(json=response("completed", text="x"))
    leased_elsewhere(started_run, 60)

    call_command("run_worker", "--once")

    assert not retrieve.called


async def test_a_stored_update_rings_the_threads_sockets_in_order(started_run):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(started_run.thread.group_name, channel)
    update = RunUpdate(status=RunStatus.COMPLETED, messages=[RemoteMessage("msg_1", "Hello")])

    assert await runs.record(started_run, update)

    first, second = await layer.receive(channel), await layer.receive(channel)
    assert (first["type"], first["message"]["role"]) == ("message.created", "assistant")
    assert (second["type"], second["run"]["status"]) == ("run.status", "completed")


async def test_an_answer_another_driver_stored_first_is_stored_once(started_run):
    """The other driver's write came first: the unique (thread, provider id) key makes this
    one's insert do nothing, and its update of the run still lands."""
    await sync_to_async(Message.objects.create)(
        thread_id=started_run.thread_id, role="assistant", text="Hello", remote_id="msg_1",
        run=started_run,
    )  # fmt: skip
    update = RunUpdate(status=RunStatus.COMPLETED, messages=[RemoteMessage("msg_1", "Hello")])

    assert await runs.record(started_run, update)

    answers = [m async for m in Message.objects.filter(remote_id="msg_1")]
    assert len(answers) == 1
    assert (await Run.objects.aget(pk=started_run.pk)).status == RunStatus.COMPLETED
