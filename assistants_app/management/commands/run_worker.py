"""A long-running worker that finishes orphaned runs: runs nobody is driving because their tab
closed before the doorbell rang, or the process driving them died or was stopped."""

import asyncio
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from assistants_app import runs, worker
from assistants_app.process_start import make_ready

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
        if not settings.REDIS_URL and not once:
            # Its events go to its own in-memory layer: the answers are stored, but open pages
            # only see them after a reload. The site's process finishes orphans itself then.
            self.stderr.write(
                "REDIS_URL is not set: answers this worker finishes reach open pages only "
                "after a reload. Without Redis the site's own process finishes orphaned runs "
                "(RUN_WORKER_IN_SERVER); this worker is not needed."
            )
        if not once:  # a process that keeps working; a one-off has no first answers to spare
            make_ready()
        asyncio.run(work(interval, once))


async def work(interval: float, once: bool = False) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await worker.work(interval, once, stopping)
    # Cancelled drivers release their leases, so another process takes over at once.
    await runs.stop_driving()
