"""Usage figures for staff: runs, failed runs and tokens per user and per assistant over a
period. Each table is one grouped query, so the report stays fast however many runs there are.
"""

from datetime import date, datetime, time, timedelta

from django import forms
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import Run, RunStatus

DEFAULT_DAYS = 30
PRESET_DAYS = [("Last 7 days", 7), ("Last 30 days", 30), ("Last 90 days", 90), ("Last year", 365)]
# Runs that ended without a full answer through no choice of the user's (cancelled is a choice).
FAILED_STATUSES = [RunStatus.FAILED, RunStatus.EXPIRED, RunStatus.INCOMPLETE]
FIGURES = {
    "runs": Count("pk"),
    "failed": Count("pk", filter=Q(status__in=FAILED_STATUSES)),
    "input_tokens": Coalesce(Sum("input_tokens"), 0),
    "output_tokens": Coalesce(Sum("output_tokens"), 0),
    "total_tokens": Coalesce(Sum("total_tokens"), 0),
}


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


def runs_between(since: date, until: date) -> QuerySet[Run]:
    """Runs created from the start of `since` to the end of `until`, in the site's time zone."""
    start = timezone.make_aware(datetime.combine(since, time.min))
    end = timezone.make_aware(datetime.combine(until + timedelta(days=1), time.min))
    return Run.objects.filter(created_at__gte=start, created_at__lt=end)


def per_user(runs: QuerySet[Run]) -> QuerySet:
    """Rows of {user_id, name, runs, failed, *_tokens}, busiest first."""
    return _grouped(runs, user_id=F("thread__owner_id"), name=F("thread__owner__username"))


def per_assistant(runs: QuerySet[Run]) -> QuerySet:
    """Rows of {assistant_id, name, runs, failed, *_tokens}, busiest first."""
    return _grouped(runs, assistant_id=F("thread__assistant_id"), name=F("thread__assistant__name"))


def totals(runs: QuerySet[Run]) -> dict:
    return runs.aggregate(**FIGURES)


def _grouped(runs: QuerySet[Run], **group_by) -> QuerySet:
    return runs.values(**group_by).annotate(**FIGURES).order_by("-runs", "name")
