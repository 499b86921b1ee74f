"""What runs spend: the usage ledger (one UsageRecord per run, charged an estimate when the run
starts and what the provider reports when it ends) and the figures staff see in admin: runs,
failed runs and tokens per user and per assistant over a period. The ledger outlives threads
and runs, so deleting a thread neither refunds the daily budget nor erases the report's history.
Each table is one grouped query, so the report stays fast however many runs there are.
"""

from datetime import date, datetime, time, timedelta

from django import forms
from django.conf import settings
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, Length, TruncDate
from django.utils import timezone

from . import costs, prepared
from .budgets import groups_of
from .models import EngineKind, Message, Run, RunStatus, UsageRecord

# Tokens an answer is expected to take, on top of what the run sends, until it reports usage.
ANSWER_TOKENS_ESTIMATE = 1_000
CHARS_PER_TOKEN = 4

DEFAULT_DAYS = 30
PRESET_DAYS = [("Last 7 days", 7), ("Last 30 days", 30), ("Last 90 days", 90), ("Last year", 365)]
# Runs that ended without a full answer through no choice of the user's (cancelled is a choice).
FAILED_STATUSES = [RunStatus.FAILED, RunStatus.EXPIRED, RunStatus.INCOMPLETE]
FIGURES = {
    "runs": Count("pk"),
    "failed": Count("pk", filter=Q(status__in=FAILED_STATUSES)),
    "input_tokens": Coalesce(Sum("input_tokens"), 0),
    "cached_input_tokens": Coalesce(Sum("cached_input_tokens"), 0),
    "output_tokens": Coalesce(Sum("output_tokens"), 0),
    "total_tokens": Coalesce(Sum("total_tokens"), 0),
    "cost": Sum("cost"),  # None: nothing in the period was priced
}


# --- The ledger ----------------------------------------------------------------------


def reserve(run: Run) -> UsageRecord:
    """Charge a starting run an estimate of its tokens (what it sends, plus an answer), so that
    answers in flight count against the budget. Call in the transaction that creates the run."""
    thread = run.thread
    chars = sum(_characters_in(thread_id=thread.pk)) + len(thread.assistant.instructions)
    if thread.assistant.engine == EngineKind.CHAT:
        chars = min(chars, settings.CHAT_HISTORY_MAX_CHARS)  # the most a chat run sends
    model = costs.model_of(thread.assistant)
    price = costs.price_for(thread.assistant.provider, model)
    sending = chars // CHARS_PER_TOKEN
    record = UsageRecord(
        run=run,
        user_id=thread.owner_id,
        assistant_id=thread.assistant_id,
        created_at=run.created_at,
        status=run.status,
        provider=thread.assistant.provider,
        model=model,
        charged_tokens=sending + ANSWER_TOKENS_ESTIMATE,
        charged_cost=costs.cost_of(price, sending, 0, ANSWER_TOKENS_ESTIMATE) if price else 0,
    )
    prepared.insert(record)
    # The user's groups now: their budgets pay for this run, whatever the user joins later.
    through = UsageRecord.groups.through
    if groups := groups_of(thread.owner_id):
        through.objects.bulk_create([through(usagerecord=record, group_id=pk) for pk in groups])
    return record


def settle(run: Run) -> None:
    """Charge the run what it reported, once it reports usage or ends (nothing reported: 0)."""
    if run.total_tokens is None and not run.is_terminal:
        return
    for record in _record_of(run_id=run.pk):
        record.status = run.status
        record.input_tokens = run.input_tokens
        record.cached_input_tokens = run.cached_input_tokens
        record.output_tokens = run.output_tokens
        record.total_tokens = run.total_tokens
        record.charged_tokens = run.total_tokens or 0
        record.cost = costs.settled_cost(record) if run.total_tokens is not None else None
        record.charged_cost = record.cost or 0
        _settled(record_id=record.pk, **{name: getattr(record, name) for name in SETTLED_FIELDS})


@prepared.select
def _characters_in(thread_id: int):
    """The characters of the thread's messages (one row, none if it has no messages)."""
    messages = Message.objects.filter(thread_id=thread_id).values("thread_id")
    return messages.annotate(chars=Sum(Length("text"))).values_list("chars", flat=True)


@prepared.select
def _record_of(run_id: int):
    return UsageRecord.objects.filter(run_id=run_id)


SETTLED_FIELDS = [
    "status", "input_tokens", "cached_input_tokens", "output_tokens", "total_tokens",
    "charged_tokens", "cost", "charged_cost",
]  # fmt: skip
_settled = prepared.Update(
    lambda record_id, **settled: (UsageRecord.objects.filter(pk=record_id), settled),
    {"record_id": int} | {name: prepared.field_kind(UsageRecord, name) for name in SETTLED_FIELDS},
)


def tokens_charged(user, since: datetime) -> int:
    """Tokens charged to the user since `since`: what ended runs spent, estimates for the rest."""
    return sum(_charged_since(user_id=user.pk, since=since))


@prepared.select
def _charged_since(user_id: int, since: datetime):
    """The user's charged tokens since then (one row, none without records): every send reads
    it while a daily budget is set (the default), so it is built once (prepared.py)."""
    records = UsageRecord.objects.filter(user_id=user_id, created_at__gte=since)
    return records.values("user_id").annotate(total=Sum("charged_tokens")).values_list(
        "total", flat=True
    )


# --- The report -----------------------------------------------------------------------


class PeriodForm(forms.Form):
    """A period of whole days, both ends included; by default the last DEFAULT_DAYS days."""

    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        today = timezone.localdate()
        data["until"] = data.get("until") or today
        data["since"] = data.get("since") or data["until"] - timedelta(days=DEFAULT_DAYS - 1)
        if data["since"] > data["until"]:
            raise forms.ValidationError("The start of the period must not be after its end.")
        return data


def presets(today: date) -> list[tuple[str, date, date]]:
    return [(label, today - timedelta(days=days - 1), today) for label, days in PRESET_DAYS]


def runs_between(since: date, until: date) -> QuerySet[UsageRecord]:
    """The ledger's runs created from the start of `since` to the end of `until`, in the site's
    time zone, deleted threads' included."""
    start = timezone.make_aware(datetime.combine(since, time.min))
    end = timezone.make_aware(datetime.combine(until + timedelta(days=1), time.min))
    return UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end)


def per_user(runs: QuerySet[UsageRecord]) -> QuerySet:
    """Rows of {user_id, name, runs, failed, *_tokens}, busiest first."""
    return _grouped(runs, "user_id", F("user__username"))


def per_assistant(runs: QuerySet[UsageRecord]) -> QuerySet:
    """Rows of {assistant_id, name, runs, failed, *_tokens}, busiest first."""
    return _grouped(runs, "assistant_id", F("assistant__name"))


def per_group(runs: QuerySet[UsageRecord]) -> QuerySet:
    """Rows of {group_id, name, ...} for the groups the users were in when the runs started
    (a user in two groups counts in both), busiest first."""
    in_groups = runs.filter(groups__isnull=False)
    return (
        in_groups.values(group_id=F("groups__id"), name=F("groups__name"))
        .annotate(**FIGURES)
        .order_by("-runs", "name")
    )


def per_day(runs: QuerySet[UsageRecord]) -> QuerySet:
    """Rows of {day, name, ...}, a row per day that had runs, oldest first."""
    days = runs.annotate(day=TruncDate("created_at")).values("day")
    return days.annotate(name=F("day"), **FIGURES).order_by("day")


def totals(runs: QuerySet[UsageRecord]) -> dict:
    return runs.aggregate(**FIGURES)


def _grouped(runs: QuerySet[UsageRecord], key: str, name: F) -> QuerySet:
    return runs.values(key, name=name).annotate(**FIGURES).order_by("-runs", "name")
