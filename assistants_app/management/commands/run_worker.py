"""A long-running worker that finishes orphaned runs: runs nobody is driving because their tab
closed before the doorbell rang, or the process driving them died or was stopped."""

import asyncio
import contextlib
import logging
import signal

from django.core.management.base import BaseCommand

from assistants_app import runs

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Drive unfinished runs whose lease is free or expired, until stopped (SIGTERM)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--interval", type=float, default=2.0, help="Seconds between looks for orphans."
        )
        parser.add_argument(
            "--once", action="store_true", help="Finish the orphans found now, then exit."
        )

    def handle(self, *args, interval, once, **options):
        asyncio.run(work(interval, once))


async def work(interval: float, once: bool = False) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    while not stopping.is_set():
        orphans = await runs.orphaned_run_ids()
        if orphans:
            log.info("worker: driving orphaned runs %s", orphans)
        tasks = [runs.ensure_driving(run_id, standby=False) for run_id in orphans]
        if once:
            await asyncio.gather(*tasks, return_exceptions=True)
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=interval)
    # Cancelled drivers release their leases, so another process takes over at once.
    await runs.stop_driving()
