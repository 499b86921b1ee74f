"""Data retention: threads nobody has touched for THREAD_RETENTION_DAYS days are deleted with
their messages and runs (and whatever else hangs off a thread by a cascading key, such as
files). The worker loop (worker.py) sweeps every RETENTION_SWEEP_SECONDS; `manage.py
apply_retention` sweeps once.

The usage ledger keeps what the deleted runs spent (UsageRecord.run becomes empty), so budgets
and usage reports do not change when conversations go. A thread whose answer is still being
written is left for the next sweep.
"""

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from . import audit
from .db import database_sync_to_async
from .models import AuditEntry, Message, Run, Thread

log = logging.getLogger(__name__)
BATCH = 200  # threads per transaction: short enough that other writers hardly wait


def cutoff(now: datetime | None = None, days: int | None = None) -> datetime | None:
    """Threads last active before this are expired; None when retention is off."""
    days = settings.THREAD_RETENTION_DAYS if days is None else days
    if days <= 0:
        return None
    return (now or timezone.now()) - timedelta(days=days)


def expired_threads(now: datetime | None = None, days: int | None = None) -> QuerySet[Thread]:
    before = cutoff(now, days)
    if before is None:
        return Thread.objects.none()
    recent_message = Message.objects.filter(thread=OuterRef("pk"), created_at__gte=before)
    active_run = Run.objects.active().filter(thread=OuterRef("pk"))
    return Thread.objects.filter(updated_at__lt=before).exclude(
        Exists(recent_message) | Exists(active_run)
    )


def delete_expired_batch(now: datetime | None = None, days: int | None = None) -> int:
    """Delete up to BATCH expired threads in one transaction; how many went."""
    with transaction.atomic():
        ids = list(expired_threads(now, days).values_list("pk", flat=True)[:BATCH])
        if not ids:
            return 0
        # Checked again in the delete itself: a message may have arrived since the look.
        deleted = expired_threads(now, days).filter(pk__in=ids)
        count = deleted.count()
        deleted.delete()
    return count


def delete_expired_threads(now: datetime | None = None, days: int | None = None) -> int:
    """Sweep until nothing expired is left; how many threads went (logged, and audited)."""
    days = settings.THREAD_RETENTION_DAYS if days is None else days
    total = 0
    while batch := delete_expired_batch(now, days):
        total += batch
    _report(total, days)
    return total


def _report(total: int, days: int) -> None:
    if not total:
        return
    log.info("retention: deleted %s threads untouched for %s days", total, days)
    audit.record(
        AuditEntry.Action.DATA_DELETED,
        "threads",
        "",
        f"{total} threads untouched for {days} days",
        {"threads": total, "retention_days": days},
    )


class Sweeper:
    """Sweeps from the worker's loop at most every `interval` seconds, the first time at once."""

    def __init__(self, interval: float):
        self.interval = interval
        self.last: float | None = None

    async def sweep_if_due(self) -> int:
        if settings.THREAD_RETENTION_DAYS <= 0:
            return 0
        if self.last is not None and time.monotonic() - self.last < self.interval:
            return 0
        self.last = time.monotonic()
        try:
            return await database_sync_to_async(delete_expired_threads)()
        except DatabaseError as error:
            log.warning("retention: sweep failed (%s); trying again at the next", error)
            return 0
