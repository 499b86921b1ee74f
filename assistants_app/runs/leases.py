"""A run's lease: the row-level claim (owner and expiry) that lets exactly one process drive
a run, while several may be asked to.

Every write of `lease_owner` / `lease_expires_at` outside the terminal store lives here.
A lease is taken for RUN_LEASE_SECONDS and renewed once a third of it has passed; a process
that dies simply stops renewing, and another takes the run over when the lease runs out.
"""

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Q
from django.utils import timezone

from ..db import database_sync_to_async
from ..models import Run

log = logging.getLogger(__name__)

PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
# While a run is being started nobody may drive it, this process included: a run without a
# provider id would look like one whose start was interrupted.
STARTING = f"{PROCESS_ID}:starting"


def starting_lease() -> dict:
    """Lease fields for a run about to be started by this process (see STARTING)."""
    window = settings.RUN_LEASE_SECONDS + 2 * settings.PROVIDER_TIMEOUT_SECONDS
    return {"lease_owner": STARTING, "lease_expires_at": timezone.now() + timedelta(seconds=window)}


@database_sync_to_async
def take_lease(run_id: int) -> bool:
    """Claim or renew the run for this process; false if another process holds it."""
    now = timezone.now()
    return bool(
        Run.objects.filter(pk=run_id)
        .active()
        .filter(Q(lease_owner=PROCESS_ID) | Q(lease_expires_at=None) | Q(lease_expires_at__lt=now))
        .update(
            lease_owner=PROCESS_ID,
            lease_expires_at=now + timedelta(seconds=settings.RUN_LEASE_SECONDS),
        )
    )


@database_sync_to_async
def keep_starting_lease(run_id: int) -> bool:
    """Turn this process's starting lease into a driving one; false if it was lost meanwhile."""
    return bool(
        Run.objects.filter(pk=run_id, lease_owner=STARTING).update(
            lease_owner=PROCESS_ID,
            lease_expires_at=timezone.now() + timedelta(seconds=settings.RUN_LEASE_SECONDS),
        )
    )


@database_sync_to_async
def release_lease(run_id: int, owner: str = PROCESS_ID) -> None:
    Run.objects.filter(pk=run_id, lease_owner=owner).update(lease_owner="", lease_expires_at=None)


@database_sync_to_async
def is_active(run_id: int) -> bool:
    return Run.objects.filter(pk=run_id).active().exists()


async def await_lease(run_id: int, wake: asyncio.Event | None) -> bool:
    """Stand by while another process drives the run; true once the lease is ours."""
    wake = wake or asyncio.Event()
    while await is_active(run_id):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=settings.RUN_LEASE_SECONDS / 3)
        wake.clear()
        if await take_lease(run_id):
            return True
    return False


async def renew_lease_when_due(run: Run, renewed_at: float) -> float | None:
    """Renew the lease once a third of it has passed: when it was renewed, None if lost."""
    now = asyncio.get_running_loop().time()
    if now - renewed_at < settings.RUN_LEASE_SECONDS / 3:
        return renewed_at
    if not await take_lease(run.pk):
        log.warning("run %s: lease lost to another process; stopping here", run.pk)
        return None
    return now


async def hand_on(run_id: int, owner: str = PROCESS_ID) -> None:
    """Release the run's lease for the next driver; if even that fails, it expires."""
    try:
        await release_lease(run_id, owner=owner)
    except DatabaseError as error:
        log.warning(
            "run %s: lease not released (%s); another driver takes over in %s s",
            run_id, error, settings.RUN_LEASE_SECONDS,
        )  # fmt: skip
