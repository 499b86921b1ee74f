"""The orphan worker: finds unfinished runs that nobody drives (their tab closed before the
doorbell rang, or the process driving them died or was stopped) and drives them.

`manage.py run_worker` runs it as a process of its own, next to daphne processes that share a
Redis channel layer. Without Redis each process's channel layer is its own memory, so a
worker elsewhere would write answers that no open page hears: there the serving process runs
the loop itself (`RUN_WORKER_IN_SERVER`), started by `EmbeddedWorker` on its first connection.
The same loop deletes expired threads (retention.py) when THREAD_RETENTION_DAYS is set.
"""

import asyncio
import contextlib
import contextvars
import logging

from django.conf import settings
from django.db import DatabaseError

from . import retention, runs

log = logging.getLogger(__name__)


async def work(interval: float, once: bool = False, stopping: asyncio.Event | None = None):
    """Look for orphans every `interval` seconds until `stopping` is set; with `once`, finish
    the orphans found now, then return."""
    stopping = stopping or asyncio.Event()
    sweeper = retention.Sweeper(settings.RETENTION_SWEEP_SECONDS)
    while not stopping.is_set():
        tasks = await _drive_orphans()
        await sweeper.sweep_if_due()
        if once:
            await asyncio.gather(*tasks, return_exceptions=True)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=interval)


async def _drive_orphans() -> list[asyncio.Task]:
    try:
        orphans = await runs.orphaned_run_ids()
    except DatabaseError as error:
        # Busy past every retry, say: the runs are still there at the next look.
        log.warning("worker: could not look for orphaned runs (%s); looking again later", error)
        return []
    if orphans:
        log.info("worker: driving orphaned runs %s", orphans)
    return [runs.ensure_driving(run_id, standby=False) for run_id in orphans]


class EmbeddedWorker:
    """ASGI middleware that starts the worker loop in this process on its first connection
    (daphne has no startup hook), when settings.RUN_WORKER_IN_SERVER."""

    def __init__(self, application):
        self.application = application
        self.task: asyncio.Task | None = None

    async def __call__(self, scope, receive, send):
        if self.task is None and settings.RUN_WORKER_IN_SERVER:
            self.task = asyncio.create_task(
                self._run(),
                name="orphan-worker",
                # Its own context: it outlives the request that happened to start it.
                context=contextvars.Context(),
            )
        return await self.application(scope, receive, send)

    async def _run(self) -> None:
        log.info("worker: finishing orphaned runs from this process")
        try:
            await work(settings.RUN_WORKER_INTERVAL_SECONDS)
        except Exception:
            log.exception("worker: the loop stopped; orphaned runs wait for a page to open")
            raise
