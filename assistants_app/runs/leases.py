"""A run's lease: the row-level claim (owner and expiry) that lets exactly one process drive
a run, while several may be asked to.

A driver holds a `Lease`: it takes it, renews it once a third of it has passed, and releases
it when it stops; a process that dies simply stops renewing, and another takes the run over
when the lease runs out. A run being started holds the starting lease (`starting_lease`),
which nobody may take, this process included, until the start keeps or releases it.

Every write of `lease_owner` / `lease_expires_at` lives here (the terminal store's clearing
uses FREE, and the store of a start keeps the starting lease with `kept` in the same write).
"""

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Q
from django.utils import timezone

from .. import prepared
from ..db import database_sync_to_async
from ..models import Run

log = logging.getLogger(__name__)

PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
# While a run is being started nobody may drive it, this process included: a run without a
# provider id would look like one whose start was interrupted.
STARTING = f"{PROCESS_ID}:starting"
# A run's lease fields when nobody holds it.
FREE = {"lease_owner": "", "lease_expires_at": None}


def starting_lease() -> dict:
    """Lease fields for a run about to be started by this process (see STARTING)."""
    window = settings.RUN_LEASE_SECONDS + 2 * settings.PROVIDER_TIMEOUT_SECONDS
    return {"lease_owner": STARTING, "lease_expires_at": timezone.now() + timedelta(seconds=window)}


def free_or_expired(now: datetime | None = None) -> Q:
    """Runs whose lease anyone may take: nobody holds it, or its holder stopped renewing."""
    return Q(lease_expires_at=None) | Q(lease_expires_at__lt=now or timezone.now())


def _driving_until() -> datetime:
    return timezone.now() + timedelta(seconds=settings.RUN_LEASE_SECONDS)


class Lease:
    """This process's claim on one run: `take`, `renew_when_due` while driving, `release`.

    `Lease.starting(run_id)` is the starting lease of a run this process is starting: the
    start's store keeps it (`kept`, `keep_starting_now`), `release` hands the run on.
    """

    def __init__(self, run_id: int, owner: str = PROCESS_ID):
        self.run_id = run_id
        self.owner = owner
        self.renewed_at: float | None = None  # the event loop's time of the last take

    @classmethod
    def starting(cls, run_id: int) -> "Lease":
        return cls(run_id, owner=STARTING)

    @classmethod
    def held(cls, run_id: int) -> "Lease":
        """The lease this process has just taken or kept, renewed from now on."""
        lease = cls(run_id)
        lease.renewed_at = asyncio.get_running_loop().time()
        return lease

    async def take(self) -> bool:
        """Claim or renew the run for this process; false if another process holds it."""
        taken = await _take(self.run_id)
        if taken:
            self.owner, self.renewed_at = PROCESS_ID, asyncio.get_running_loop().time()
        return taken

    def renew_in(self) -> float:
        """Seconds until the lease is due for renewal (a third of it has passed)."""
        elapsed = asyncio.get_running_loop().time() - (self.renewed_at or 0.0)
        return max(0.0, settings.RUN_LEASE_SECONDS / 3 - elapsed)

    async def renew_when_due(self) -> bool:
        """Renew the lease once a third of it has passed; false once it was lost."""
        if self.renew_in() > 0:
            return True
        if not await self.take():
            log.warning("run %s: lease lost to another process; stopping here", self.run_id)
            return False
        return True

    async def wait_until_free(self, wake: asyncio.Event | None = None) -> bool:
        """Stand by while another process drives the run (trying again whenever `wake` is set,
        and every third of a lease); true once the lease is ours, false once the run ended."""
        wake = wake or asyncio.Event()
        while await _is_active(self.run_id):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=settings.RUN_LEASE_SECONDS / 3)
            wake.clear()
            if await self.take():
                return True
        return False

    async def release(self) -> None:
        """Hand the run to the next driver; if even that fails, the lease expires."""
        try:
            await _release(self.run_id, self.owner)
        except DatabaseError as error:
            log.warning(
                "run %s: lease not released (%s); another driver takes over in %s s",
                self.run_id, error, settings.RUN_LEASE_SECONDS,
            )  # fmt: skip


def release_all(run_ids: list[int]) -> None:
    """Release this process's leases of these runs at once (a clean exit), synchronously."""
    Run.objects.filter(pk__in=run_ids, lease_owner=PROCESS_ID).update(**FREE)


@database_sync_to_async
def _take(run_id: int) -> bool:
    return bool(_take_lease(run_id=run_id, now=timezone.now(), until=_driving_until()))


@prepared.update
def _take_lease(run_id: int, now: datetime, until: datetime):
    ours = Q(lease_owner=PROCESS_ID) | free_or_expired(now)
    rows = Run.objects.filter(pk=run_id).active().filter(ours)
    return rows, {"lease_owner": PROCESS_ID, "lease_expires_at": until}


def kept() -> dict:
    """Lease fields of a run this process drives from now on: what a starting lease turns
    into when kept (set by the write that stores the start, runs/store.py)."""
    return {"lease_owner": PROCESS_ID, "lease_expires_at": _driving_until()}


def keep_starting_now(run_id: int) -> bool:
    """Turn this process's starting lease of the run into a driving one (on a database
    thread); false if it was lost meanwhile."""
    return bool(_keep_starting_lease(run_id=run_id, until=_driving_until()))


@prepared.update
def _keep_starting_lease(run_id: int, until: datetime):
    rows = Run.objects.filter(pk=run_id, lease_owner=STARTING)
    return rows, {"lease_owner": PROCESS_ID, "lease_expires_at": until}


@database_sync_to_async
def _release(run_id: int, owner: str) -> None:
    Run.objects.filter(pk=run_id, lease_owner=owner).update(**FREE)


@database_sync_to_async
def _is_active(run_id: int) -> bool:
    return Run.objects.filter(pk=run_id).active().exists()
