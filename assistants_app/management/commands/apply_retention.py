"""Delete threads untouched for THREAD_RETENTION_DAYS days, once (the worker does it too)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from assistants_app import retention


class Command(BaseCommand):
    help = "Delete threads (with their messages and runs) untouched for THREAD_RETENTION_DAYS."

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, help="Use this many days instead of THREAD_RETENTION_DAYS."
        )

    def handle(self, *args, days, **options):
        if days is not None and days <= 0:
            raise CommandError("--days must be 1 or more.")
        days = settings.THREAD_RETENTION_DAYS if days is None else days
        if days <= 0:
            self.stdout.write("Retention is off (THREAD_RETENTION_DAYS is 0): nothing deleted.")
            return
        deleted = retention.delete_expired_threads(days=days)
        self.stdout.write(f"Deleted {deleted} thread(s) untouched for {days} days.")
