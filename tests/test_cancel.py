"""Stopping an answer from the page: POST /threads/<id>/cancel/ and what follows."""

import pytest
from channels.db import database_sync_to_async
from django.test import AsyncClient

from assistants_app import runs
from assistants_app.models import Assistant, EngineKind, Run, RunStatus, Thread
from tests.assistants_api import provider, received, remote_run, started_run, statuses, subscribe

pytestmark = pytest.mark.django_db(transaction=True)

RUN_URL = "/threads/thread_1/runs/run_1"


@pytest.fixture
def classic(db):
    return Assistant.objects.create(
        name="Classic", model="gpt-test", engine=EngineKind.ASSISTANTS, provider="test",
        remote_id="asst_1",
    )  # fmt: skip


@pytest.fixture
def thread(alice, classic):
    return Thread.objects.create(owner=alice, assistant=classic)


@pytest.fixture
async def as_alice(alice):
    client = AsyncClient()
    await client.aforce_login(alice)
    return client


@pytest.fixture
async def as_bob(bob):
    client = AsyncClient()
    await client.aforce_login(bob)
    return client


def cancel_url(thread) -> str:
    return f"/threads/{thread.pk}/cancel/"


async def test_it_cancels_the_active_run_and_polling_sees_it_end(as_alice, thread):
    run = await _started(thread)
    channel = await subscribe(thread)
    with provider() as mock:
        cancel = mock.post(f"{RUN_URL}/cancel").respond(json=remote_run("cancelling"))
        response = await as_alice.post(cancel_url(thread))
        mock.get(RUN_URL).respond(json=remote_run("cancelled"))
        await runs.drive(run.pk)

    assert cancel.called
    assert response.status_code == 200
    assert response.json()["run"]["status"] == "cancelling"
    assert (await Run.objects.aget(pk=run.pk)).status == "cancelled"
    events = await received(channel)
    assert statuses(events) == ["cancelling", "cancelled"]
    # The doorbell makes sure an open socket drives the run to its end.
    assert {"type": "run.started", "run_id": run.pk} in events


async def test_it_refuses_to_cancel_another_users_run(as_bob, thread):
    run = await _started(thread)
    with provider():  # strict: any call to the provider fails the test
        response = await as_bob.post(cancel_url(thread))
    assert response.status_code == 404
    assert (await Run.objects.aget(pk=run.pk)).status == "in_progress"


async def test_it_says_when_there_is_nothing_to_cancel(as_alice, thread):
    response = await as_alice.post(cancel_url(thread))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "NO_ACTIVE_RUN"


async def test_it_reports_a_provider_refusing_to_cancel(as_alice, thread):
    run = await _started(thread)
    refusal = {"error": {"message": "Cannot cancel run with status 'completed'.",
                         "type": "invalid_request_error", "code": None}}  # fmt: skip
    with provider() as mock:
        mock.post(f"{RUN_URL}/cancel").respond(400, json=refusal)
        response = await as_alice.post(cancel_url(thread))
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "CANCEL_FAILED"
    assert "Cannot cancel run with status 'completed'." in error["message"]
    assert (await Run.objects.aget(pk=run.pk)).status == "in_progress"  # polling settles it


async def test_it_does_not_ask_the_provider_twice(as_alice, thread):
    run = await _started(thread)
    await Run.objects.filter(pk=run.pk).aupdate(status=RunStatus.CANCELLING)
    with provider():  # strict: a second cancel request would fail the test
        response = await as_alice.post(cancel_url(thread))
    assert response.status_code == 200
    assert response.json()["run"]["status"] == "cancelling"


async def test_it_only_cancels_on_post(as_alice, thread):
    await _started(thread)
    response = await as_alice.get(cancel_url(thread))
    assert response.status_code == 405


async def test_it_cancels_a_run_the_provider_never_heard_of_without_asking_it(as_alice, thread):
    run = await Run.objects.acreate(thread=thread)
    with provider():
        response = await as_alice.post(cancel_url(thread))
    assert response.json()["run"]["status"] == "cancelled"
    assert (await Run.objects.aget(pk=run.pk)).status == "cancelled"


async def test_it_cancels_a_responses_api_run_too(as_alice, alice, assistant):
    thread = await Thread.objects.acreate(owner=alice, assistant=assistant, remote_id="conv_1")
    run = await Run.objects.acreate(thread=thread, status="in_progress", remote_id="resp_1")
    cancelled = {
        "id": "resp_1", "object": "response", "created_at": 1767225600, "status": "cancelled",
        "background": True, "model": "gpt-test", "output": [], "error": None,
        "incomplete_details": None, "instructions": None, "metadata": {},
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "usage": None,
    }  # fmt: skip
    with provider() as mock:
        mock.post("/responses/resp_1/cancel").respond(json=cancelled)
        response = await as_alice.post(cancel_url(thread))
    assert response.json()["run"]["status"] == "cancelled"
    assert (await Run.objects.aget(pk=run.pk)).status == "cancelled"


@pytest.mark.parametrize(("status", "shown"), [("in_progress", True), ("completed", False)])
def test_the_page_shows_a_stop_button_only_while_a_run_is_active(alice_client, thread, status,
                                                                  shown):  # fmt: skip
    Run.objects.create(thread=thread, status=status)
    html = alice_client.get(f"/threads/{thread.pk}/").content.decode()
    assert ('id="stop" class="stop">' in html) is shown
    assert ('id="stop" class="stop" hidden>' in html) is not shown
    assert ('id="send" hidden>' in html) is shown  # Send turns into Stop


async def _started(thread) -> Run:
    return await database_sync_to_async(started_run)(thread, RunStatus.IN_PROGRESS)
