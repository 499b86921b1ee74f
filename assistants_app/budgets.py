"""Group budgets: what a group's members may spend together, in tokens or money, per day and
per month (UTC), set in admin (GroupBudget). Checked like the per-user daily budget (limits.py)
when a run is about to be created, against the usage ledger: ended runs at what they spent,
runs in flight at their estimate.

The ledger in the database is the truth, for every process. A check and the reservation that
follows it run in one transaction holding the group's budget row (SELECT ... FOR UPDATE; on
SQLite the immediate transaction holds the whole database), so members sending at once take
turns, and each sees what the others reserved: a burst overshoots a budget by at most the one
run that starts just under it, and by what runs spend beyond their estimate.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import prepared
from .config_cache import ConfigCache
from .exceptions import RateLimited
from .models import GroupBudget, UsageRecord


@dataclass(frozen=True)
class Spent:
    tokens_today: int
    tokens_this_month: int
    cost_today: Decimal
    cost_this_month: Decimal


# Read on every send: which groups the user is in (their budgets pay for the run: usage.py)
# and which groups have a budget (most have none: then nothing is locked or summed).
_memberships = ConfigCache(
    "group-memberships", models=[Group], relations=[get_user_model().groups.through]
)
_budgeted_groups = ConfigCache("budgeted-groups", models=[GroupBudget])


def groups_of(user_id: int) -> tuple[int, ...]:
    """The ids of the user's groups."""
    return _memberships.get(user_id, lambda: tuple(_group_ids_of(user_id=user_id)))


@prepared.select
def _group_ids_of(user_id: int):
    # Built once (prepared.py): read on a user's send whenever _memberships has forgotten it.
    memberships = get_user_model().groups.through.objects.filter(user_id=user_id)
    return memberships.values_list("group_id", flat=True)


def check(user) -> None:
    """Raise RateLimited when a group of the user has spent a budget of its period. Call in
    the transaction that creates the run, before its reservation (services.py)."""
    budgeted = _budgeted_groups.get(
        "all", lambda: frozenset(GroupBudget.objects.values_list("group_id", flat=True))
    )
    if budgeted.isdisjoint(groups_of(user.pk)):
        return
    budgets = (
        GroupBudget.objects.select_for_update(of=("self",))
        .filter(group__user=user)
        .select_related("group")
        .order_by("pk")  # always in the same order: two members lock without a deadlock
    )
    for budget in budgets:
        _check_one(budget, spent(budget))


def spent(budget: GroupBudget) -> Spent:
    """What the group's runs were charged today and this month (UTC)."""
    today, month = start_of_today(), start_of_month()
    records = UsageRecord.objects.filter(groups=budget.group_id, created_at__gte=month)
    in_today = Q(created_at__gte=today)
    figures = records.aggregate(
        tokens_today=Coalesce(Sum("charged_tokens", filter=in_today), 0),
        tokens_this_month=Coalesce(Sum("charged_tokens"), 0),
        cost_today=Sum("charged_cost", filter=in_today),
        cost_this_month=Sum("charged_cost"),
    )
    figures["cost_today"] = figures["cost_today"] or Decimal(0)
    figures["cost_this_month"] = figures["cost_this_month"] or Decimal(0)
    return Spent(**figures)


def _check_one(budget: GroupBudget, spent: Spent) -> None:
    name = budget.group.name
    limits = [
        (budget.tokens_per_day, spent.tokens_today, "today's", "tokens", _tomorrow),
        (budget.tokens_per_month, spent.tokens_this_month, "this month's", "tokens", _next_month),
        (budget.cost_per_day, spent.cost_today, "today's", "money", _tomorrow),
        (budget.cost_per_month, spent.cost_this_month, "this month's", "money", _next_month),
    ]
    for limit, used, period, unit, renewal in limits:
        if not limit or used < limit:
            continue
        amount = (
            f"{limit:,} tokens" if unit == "tokens" else f"{limit:,.2f} {settings.COST_CURRENCY}"
        )
        renews = renewal()
        raise RateLimited(
            "GROUP_BUDGET_SPENT",
            f"Your group “{name}” has used {period} budget of {amount}. It renews "
            f"{renews:%-d %B} at midnight UTC; your message is still here.",
            retry_after=int((renews - timezone.now()).total_seconds()) + 1,
        )


def start_of_today() -> datetime:
    return timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)  # now() is UTC


def start_of_month() -> datetime:
    return start_of_today().replace(day=1)


def _tomorrow() -> datetime:
    return start_of_today() + timedelta(days=1)


def _next_month() -> datetime:
    start = start_of_month()
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
