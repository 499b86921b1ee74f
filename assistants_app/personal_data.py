"""A person's own data: all of it as one archive to download, and all of it deleted at once.

The archive is a zip of `account.json` (the account, its groups and what it spent) and, per
thread, the JSON and Markdown exports the thread page offers (services.export_*). Deleting
takes every thread with its messages and runs; the account stays, and so does the usage
ledger (token counts, no text), which budgets are counted from: deleting conversations must
not hand a person a fresh budget.
"""

import json
import tempfile
import zipfile

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone
from django.utils.text import slugify

from . import audit, services
from .exceptions import RunActive
from .models import AuditEntry, Message, Run, Thread, UsageRecord

SPOOL_BYTES = 8 * 1024 * 1024  # archives bigger than this are written to a temporary file


def summary(user) -> dict:
    """What the account page says the person has here."""
    threads = Thread.objects.filter(owner=user)
    return {
        "threads": threads.count(),
        "messages": Message.objects.filter(thread__owner=user).count(),
    }


def account_data(user) -> dict:
    usage = (
        UsageRecord.objects.filter(user=user)
        .values("created_at__date")
        .annotate(answers=Count("id"), tokens=Sum("charged_tokens"))
        .order_by("created_at__date")
    )
    return {
        "username": user.get_username(),
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "date_joined": user.date_joined.isoformat(),
        "groups": sorted(user.groups.values_list("name", flat=True)),
        "usage_per_day": [
            {
                "date": day["created_at__date"].isoformat(),
                "answers": day["answers"],
                "tokens": day["tokens"] or 0,
            }  # fmt: skip
            for day in usage
        ],
        "exported_at": timezone.now().isoformat(timespec="seconds"),
    }


def export_archive(user) -> tempfile.SpooledTemporaryFile:
    """All of the user's data as a zip file, positioned at its start."""
    archive = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("account.json", _json(account_data(user)))
        threads = (
            Thread.objects.filter(owner=user)
            .select_related("assistant")
            .prefetch_related("messages")  # one query per 100 threads, not two per thread
            .order_by("pk")
        )
        for thread in threads.iterator(chunk_size=100):
            name = f"threads/{thread.pk}-{slugify(str(thread))[:60].strip('-') or 'thread'}"
            bundle.writestr(f"{name}.json", _json(services.export_json(user, thread)))
            bundle.writestr(f"{name}.md", services.export_markdown(user, thread))
    archive.seek(0)
    return archive


def _json(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2)


def archive_name(user) -> str:
    day = timezone.now().date().isoformat()
    return f"{slugify(user.get_username()) or 'my'}-data-{day}.zip"


def delete_all(user) -> int:
    """Delete every thread of the user, with messages and runs; how many threads went.
    Refused while an answer is being written: its driver would write into a deleted thread."""
    with transaction.atomic():
        # The lock a new message takes too (services._starting_a_run): none starts meanwhile.
        get_user_model().objects.select_for_update().filter(pk=user.pk).exists()
        threads = Thread.objects.filter(owner=user)
        if Run.objects.active().filter(thread__owner=user).exists():
            raise RunActive(
                "RUN_ACTIVE",
                "An answer is still being written. Stop it or wait for it, then delete.",
            )
        count = threads.count()
        threads.delete()
        audit.record(
            AuditEntry.Action.DATA_DELETED,
            "user",
            user.pk,
            user.get_username(),
            {"threads": count},
        )
    return count
