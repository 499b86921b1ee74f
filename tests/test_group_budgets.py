"""Group budgets: what a group's members may spend together in tokens or money, per day and per
month, enforced from the ledger like the per-user budget; a burst of members sending at once
does not overshoot it by more than the runs in flight were estimated at."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import connections
from django.db.backends.signals import connection_created
from django.test import Client
from django.utils import timezone

from assistants_app import budgets, db, limits, usage
from assistants_app.models import GroupBudget, ModelPrice, Run, RunStatus, Thread, UsageRecord

from .test_fair_use import assert_refused, post, provider  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def lab(alice, bob):
    group = Group.objects.create(name="Lab")
    group.user_set.add(alice, bob)
    return group


def spend(user, assistant, tokens: int, cost="0", days_ago: int = 0) -> UsageRecord:
    """An ended run of the user's, in the ledger as the driver leaves it, with their groups."""
    when = timezone.now() - timedelta(days=days_ago)
    thread = Thread.objects.create(owner=user, assistant=assistant)
    run = Run.objects.create(thread=thread, status=RunStatus.COMPLETED, created_at=when)
    record = usage.reserve(run)
    UsageRecord.objects.filter(pk=record.pk).update(
        total_tokens=tokens, charged_tokens=tokens, cost=Decimal(cost), charged_cost=Decimal(cost)
    )
    return record


def test_members_share_the_groups_daily_tokens(alice_client, alice, bob, lab, assistant):
    GroupBudget.objects.create(group=lab, tokens_per_day=1000)
    spend(bob, assistant, 600)
    spend(alice, assistant, 400)
    thread = Thread.objects.create(owner=alice, assistant=assistant)

    response = post(alice_client, thread, "one more")

    error = assert_refused(response, "GROUP_BUDGET_SPENT", thread)
    assert "“Lab”" in error["message"] and "today's budget of 1,000 tokens" in error["message"]
    assert "midnight UTC" in error["message"]
    assert 0 < int(response["Retry-After"]) <= 86_401


def test_a_user_outside_the_group_is_not_held_to_it(bob, lab, assistant, django_user_model):
    GroupBudget.objects.create(group=lab, tokens_per_day=100)
    spend(bob, assistant, 500)
    carol = django_user_model.objects.create_user("carol")
    limits.check_can_start_run(carol)
    with pytest.raises(limits.RateLimited):
        limits.check_can_start_run(bob)


def test_yesterday_counts_for_the_month_not_the_day(alice, lab, assistant, monkeypatch, settings):
    settings.DAILY_TOKEN_BUDGET = 0
    monkeypatch.setattr(timezone, "now", lambda: datetime(2026, 11, 15, 10, tzinfo=UTC))
    budget = GroupBudget.objects.create(group=lab, tokens_per_day=1000)
    spend(alice, assistant, 5000, days_ago=1)
    limits.check_can_start_run(alice)
    budget.tokens_per_month = 5000
    budget.save()
    with pytest.raises(limits.RateLimited) as refused:
        limits.check_can_start_run(alice)
    assert "this month's budget of 5,000 tokens" in refused.value.message


def test_a_money_budget_counts_what_runs_cost(alice, lab, assistant, settings):
    settings.COST_CURRENCY = "EUR"
    GroupBudget.objects.create(group=lab, cost_per_month=Decimal("10.00"))
    spend(alice, assistant, 10, cost="9.99")
    limits.check_can_start_run(alice)
    spend(alice, assistant, 10, cost="0.01")
    with pytest.raises(limits.RateLimited) as refused:
        limits.check_can_start_run(alice)
    assert "this month's budget of 10.00 EUR" in refused.value.message


def test_runs_in_flight_count_at_their_estimated_cost(alice, lab, assistant):
    ModelPrice.objects.create(model="gpt-test", input_per_million=0, output_per_million=1000)
    GroupBudget.objects.create(group=lab, cost_per_day=Decimal("1"))
    thread = Thread.objects.create(owner=alice, assistant=assistant)
    usage.reserve(Run.objects.create(thread=thread))  # ~1000 output tokens at 1000 per million
    with pytest.raises(limits.RateLimited):
        limits.check_can_start_run(alice)


def test_a_user_who_left_the_group_leaves_their_spending_with_it(alice, bob, lab, assistant):
    GroupBudget.objects.create(group=lab, tokens_per_day=1000)
    spend(bob, assistant, 1000)
    lab.user_set.remove(bob)
    limits.check_can_start_run(bob)  # no longer held to the lab's budget...
    with pytest.raises(limits.RateLimited):
        limits.check_can_start_run(alice)  # ...which still counts what he spent in it


def test_an_empty_or_zero_budget_is_no_limit(alice, lab, assistant, settings):
    settings.DAILY_TOKEN_BUDGET = 0
    GroupBudget.objects.create(group=lab, tokens_per_day=0, tokens_per_month=None)
    spend(alice, assistant, 10**9)
    limits.check_can_start_run(alice)


def test_months_renew_on_the_first(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: datetime(2026, 12, 15, 10, tzinfo=UTC))
    assert budgets._next_month() == datetime(2027, 1, 1, tzinfo=UTC)


def test_staff_see_what_a_group_spent_in_admin(staff_client, alice, lab, assistant):
    budget = GroupBudget.objects.create(group=lab, tokens_per_day=1000)
    spend(alice, assistant, 250, cost="1.5")
    page = staff_client.get(f"/admin/assistants_app/groupbudget/{budget.pk}/change/")
    assert "250 tokens · 1.50 USD" in page.content.decode()


MEMBERS = 12
BUDGET = 3000  # each run is reserved ~1004 tokens: three fit, the fourth finds it spent


@pytest.fixture
def reads_not_blocked_by_writers(monkeypatch):
    """The test database is SQLite in memory with a shared cache, where a read of a table
    another connection is writing fails at once ("database table is locked") instead of
    waiting, unlike the site's file database in WAL mode. Reads here are made as WAL makes
    them: not blocked by writers. Writers still take turns, which is what the test is about;
    refused at once where the file database's busy timeout would have them wait, they try
    again until their turn comes (on a loaded machine twelve of them outlast db.py's usual
    tries, and a send answered 503 "busy" would say nothing about the budget)."""
    monkeypatch.setattr(db, "BUSY_ATTEMPTS", 8)

    def read_uncommitted(sender, connection, **kwargs):
        if connection.vendor == "sqlite":
            connection.cursor().execute("PRAGMA read_uncommitted = 1")

    connection_created.connect(read_uncommitted)
    yield
    connection_created.disconnect(read_uncommitted)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("reads_not_blocked_by_writers")
def test_a_burst_of_members_does_not_overshoot_the_budget(
    django_user_model, assistant, provider, settings  # noqa: F811
):
    """Twelve members send at once, each from a request thread of their own, as daphne
    serves them: exactly as many runs start as the budget holds."""
    settings.MESSAGES_PER_MINUTE = 0
    group = Group.objects.create(name="Burst")
    GroupBudget.objects.create(group=group, tokens_per_day=BUDGET)
    members = [django_user_model.objects.create_user(f"m{n}") for n in range(MEMBERS)]
    group.user_set.add(*members)
    threads = [Thread.objects.create(owner=m, assistant=assistant) for m in members]
    clients = [Client() for _ in members]
    for client, member in zip(clients, members, strict=True):
        client.force_login(member)
    start = threading.Barrier(MEMBERS, timeout=30)

    def send(index: int) -> int:
        start.wait()
        try:
            return post(clients[index], threads[index], "hi").status_code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=MEMBERS) as pool:
        statuses = list(pool.map(send, range(MEMBERS)))

    estimate = UsageRecord.objects.first().charged_tokens
    assert sorted(statuses) == [201] * 3 + [429] * (MEMBERS - 3), statuses
    charged = sum(UsageRecord.objects.values_list("charged_tokens", flat=True))
    assert charged < BUDGET + estimate  # over by at most the run that started just under it
