"""A run's lease (runs/leases.py): one process drives a run at a time, another takes it over
only once the holder stops renewing it, and a starting run is nobody's to take."""

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from assistants_app.engines.base import RunUpdate
from assistants_app.models import Run, RunStatus
from assistants_app.runs import leases
from assistants_app.runs.leases import PROCESS_ID, STARTING, Lease
from assistants_app.runs.store import record

pytestmark = pytest.mark.django_db(transaction=True)


async def held_by(run: Run, owner: str, seconds: float) -> None:
    expires_at = timezone.now() + timedelta(seconds=seconds)
    await Run.objects.filter(pk=run.pk).aupdate(lease_owner=owner, lease_expires_at=expires_at)


async def owner_of(run: Run) -> str:
    return (await Run.objects.aget(pk=run.pk)).lease_owner


async def test_a_free_lease_is_taken_and_released(started_run):
    lease = Lease(started_run.pk)

    assert await lease.take()
    assert await owner_of(started_run) == PROCESS_ID
    await lease.release()
    assert await owner_of(started_run) == ""


async def test_a_lease_another_process_holds_is_not_taken_until_it_runs_out(started_run):
    await held_by(started_run, "other-host:1:abc", seconds=60)
    assert not await Lease(started_run.pk).take()

    await held_by(started_run, "other-host:1:abc", seconds=-1)  # it stopped renewing
    assert await Lease(started_run.pk).take()


async def test_renewal_waits_until_a_third_of_the_lease_has_passed(started_run, settings):
    settings.RUN_LEASE_SECONDS = 0.3
    lease = Lease(started_run.pk)
    await lease.take()
    await held_by(started_run, "other-host:1:abc", seconds=60)  # taken over meanwhile

    assert await lease.renew_when_due()  # not due yet: no query, still ours as far as we know
    await asyncio.sleep(0.1)
    assert not await lease.renew_when_due()  # due: the renewal finds it lost


async def test_a_starting_lease_is_nobodys_to_take_until_kept(started_run):
    await Run.objects.filter(pk=started_run.pk).aupdate(**leases.starting_lease())
    assert not await Lease(started_run.pk).take()  # this process's driver included

    assert await sync_to_async(leases.keep_starting_now)(started_run.pk)
    assert await owner_of(started_run) == PROCESS_ID
    assert not await sync_to_async(leases.keep_starting_now)(started_run.pk)  # kept once only


async def test_the_store_of_a_start_keeps_its_lease_in_the_same_write(started_run):
    await Run.objects.filter(pk=started_run.pk).aupdate(**leases.starting_lease())
    started_run.lease_owner = STARTING

    assert await record(started_run, RunUpdate(status=RunStatus.IN_PROGRESS), keep_starting=True)

    stored = await Run.objects.aget(pk=started_run.pk)
    assert (stored.status, stored.lease_owner) == (RunStatus.IN_PROGRESS, PROCESS_ID)
    assert started_run.lease_owner == PROCESS_ID  # the starter drives it


async def test_a_start_whose_lease_was_lost_is_stored_but_not_kept(started_run):
    # The start outlasted its starting lease and another process took the run over.
    await held_by(started_run, "other-host:1:abc", seconds=60)
    started_run.lease_owner = STARTING

    assert await record(started_run, RunUpdate(status=RunStatus.IN_PROGRESS), keep_starting=True)

    stored = await Run.objects.aget(pk=started_run.pk)
    assert (stored.status, stored.lease_owner) == (RunStatus.IN_PROGRESS, "other-host:1:abc")
    assert started_run.lease_owner == STARTING  # not this process's to drive


async def test_a_start_stopped_meanwhile_keeps_its_lease_but_not_its_status(started_run):
    # Stop was pressed while the provider was asked: the driver still follows the run (to see
    # it cancelled), and the provider's "in progress" does not overwrite "cancelling".
    starting = leases.starting_lease()
    await Run.objects.filter(pk=started_run.pk).aupdate(status=RunStatus.CANCELLING, **starting)
    started_run.lease_owner = STARTING

    assert await record(started_run, RunUpdate(status=RunStatus.IN_PROGRESS), keep_starting=True)

    stored = await Run.objects.aget(pk=started_run.pk)
    assert (stored.status, stored.lease_owner) == (RunStatus.CANCELLING, PROCESS_ID)
    assert started_run.lease_owner == PROCESS_ID


async def test_a_starting_lease_released_hands_the_run_to_any_driver(started_run):
    await Run.objects.filter(pk=started_run.pk).aupdate(**leases.starting_lease())
    assert await owner_of(started_run) == STARTING

    await Lease.starting(started_run.pk).release()

    assert await Lease(started_run.pk).take()


async def test_standing_by_ends_with_the_lease_or_with_the_run(started_run, settings):
    settings.RUN_LEASE_SECONDS = 0.3
    await held_by(started_run, "other-host:1:abc", seconds=0.2)
    assert await asyncio.wait_for(Lease(started_run.pk).wait_until_free(), 5)

    await held_by(started_run, "other-host:1:abc", seconds=60)
    await Run.objects.filter(pk=started_run.pk).aupdate(status=RunStatus.COMPLETED)
    assert not await asyncio.wait_for(Lease(started_run.pk).wait_until_free(), 5)
