"""The sidebar's list of threads: grouped by date as chat apps do (Today, Yesterday, Previous 7
days, then by month), a page at a time, and with a search, the snippet that matched."""

from datetime import date, datetime, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from .models import Message, Thread

PAGE_SIZE = 50
# Characters kept before and after the match: few before, so that the match itself shows in
# a narrow sidebar.
SNIPPET_BEFORE, SNIPPET_AFTER = 16, 64


def date_group(when: datetime, today: date) -> str:
    day = timezone.localtime(when).date()
    if day >= today:
        return "Today"
    if day == today - timedelta(days=1):
        return "Yesterday"
    if day > today - timedelta(days=7):
        return "Previous 7 days"
    return day.strftime("%B %Y")


def page_of(threads: QuerySet[Thread], offset: int, query: str = "") -> dict:
    """One page of threads as plain data, each with its group and, for a search, a snippet;
    `next_offset` is None on the last page."""
    rows = list(threads[offset : offset + PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    today = timezone.localdate()
    items = [
        {
            "id": thread.pk,
            "title": str(thread),
            "assistant": thread.assistant.name,
            "updated_at": thread.updated_at.isoformat(),
            "group": date_group(thread.updated_at, today),
            "snippet": snippet(thread, query) if query else "",
        }
        for thread in rows
    ]
    return {"threads": items, "next_offset": offset + PAGE_SIZE if more else None}


def snippet(thread: Thread, query: str) -> str:
    """The words around the first place a message of the thread contains the query; "" when
    only the title matched."""
    message = Message.objects.filter(thread=thread, text__icontains=query).order_by("pk").first()
    if message is None:
        return ""
    text = " ".join(message.text.split())
    at = text.lower().find(query.lower())
    if at < 0:  # the match spanned whitespace that was squeezed
        at = 0
    start, end = max(0, at - SNIPPET_BEFORE), at + len(query) + SNIPPET_AFTER
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")
