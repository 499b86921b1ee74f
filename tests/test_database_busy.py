"""What a database that is busy, or refuses a write, does to sends and run drivers: a send is
answered with a sentence, never a 500; a driver hands its run on or fails it with a reason,
never leaves it stranded."""

import pytest
import respx
from asgiref.sync import sync_to_async
from django.db import DatabaseError, OperationalError

from assistants_app import runs, worker
from assistants_app.db import database_sync_to_async
from assistants_app.models import Message, Run, RunStatus
from assistants_app.runs import store

from .conftest import PROVIDER_URL
from .provider_payloads import RESPONSE_ID, response

pytestmark = pytest.mark.django_db(transaction=True)
LOCKED = OperationalError("database is locked")


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch):
    monkeypatch.setattr("random.uniform", lambda low, high: 0.0)


async def test_a_call_the_database_refuses_as_busy_is_tried_again():
    tries = []

    @database_sync_to_async
    def store():
        tries.append(1)
        if len(tries) < 3:
            raise LOCKED
        return "stored"

    assert await store() == "stored"
    assert len(tries) == 3


async def test_an_error_other_than_busy_is_not_tried_again():
    tries = []

    @database_sync_to_async
    def store():
        tries.append(1)
        raise OperationalError("no such table: elsewhere")

    with pytest.raises(OperationalError):
        await store()
    assert len(tries) == 1


def test_a_send_the_database_keeps_refusing_answers_503_and_stores_nothing(
    client, alice, alice_thread, monkeypatch
):
    def busy(user):
        raise LOCKED

    monkeypatch.setattr("assistants_app.services.limits.check_can_start_run", busy)
    client.force_login(alice)

    response = client.post(
        f"/threads/{alice_thread.pk}/messages/", {"text": "Hello"}, content_type="application/json"
    )

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "SITE_BUSY"
    assert "Try again" in response.json()["error"]["message"]
    assert not Message.objects.filter(thread=alice_thread).exists()
    assert not Run.objects.filter(thread=alice_thread).exists()


@pytest.fixture
def provider():
    with respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=False) as mock:
        mock.get(f"/responses/{RESPONSE_ID}").respond(json=response("completed", text="Hi"))
        yield mock


def store_failing(monkeypatch, error: Exception, times: int) -> None:
    """store._store raises `error` (after db.py's retries) the first `times` calls."""
    real, calls = store._store, []

    async def failing(*args):
        calls.append(1)
        if len(calls) <= times:
            raise error
        return await real(*args)

    monkeypatch.setattr(store, "_store", failing)


async def test_a_driver_the_database_stays_busy_for_hands_the_run_on(
    provider, started_run, monkeypatch
):
    store_failing(monkeypatch, LOCKED, times=1)

    await runs.drive(started_run.pk)  # no error escapes

    await started_run.arefresh_from_db()
    assert started_run.status == RunStatus.QUEUED  # not failed: handed on...
    assert started_run.lease_owner == ""  # ...free for the next driver at once
    assert started_run.pk in await runs.orphaned_run_ids()

    await runs.drive(started_run.pk)  # the next driver, the worker's say

    await started_run.arefresh_from_db()
    assert started_run.status == RunStatus.COMPLETED
    assert await Message.objects.filter(run=started_run, text="Hi").acount() == 1


async def test_a_driver_whose_answer_cannot_be_stored_fails_the_run_with_a_reason(
    provider, started_run, monkeypatch
):
    # Not busy, not a value the database refuses (test_unstorable.py has those): a write
    # that failed for a reason the next driver would meet again.
    store_failing(monkeypatch, DatabaseError("disk I/O error"), times=1)

    await runs.drive(started_run.pk)

    await started_run.arefresh_from_db()
    assert started_run.status == RunStatus.FAILED
    assert started_run.error_code == "storage_failed"
    assert started_run.error_message == "The answer could not be saved. Try again."
    assert started_run.lease_owner == ""


async def test_the_worker_goes_on_looking_after_the_database_was_busy(
    provider, started_run, monkeypatch
):
    real, looks = runs.orphaned_run_ids, []

    async def busy_once():
        looks.append(1)
        if len(looks) == 1:
            raise LOCKED
        return await real()

    monkeypatch.setattr(runs, "orphaned_run_ids", busy_once)

    await worker.work(interval=0, once=True)  # a look that fails is skipped, not fatal
    await worker.work(interval=0, once=True)

    await sync_to_async(started_run.refresh_from_db)()
    assert started_run.status == RunStatus.COMPLETED
