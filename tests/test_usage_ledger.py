"""The usage ledger: budgets count what was spent, deleted threads' runs and answers still in
flight included, and the usage report keeps its history after threads are deleted."""

import importlib

import pytest
import respx
from asgiref.sync import async_to_sync
from django.apps import apps
from django.urls import reverse

from assistants_app import limits, prepared, runs, services, usage
from assistants_app.engines.base import RunUpdate, Usage
from assistants_app.exceptions import RunActive
from assistants_app.models import Run, RunStatus, Thread, UsageRecord

from .conftest import PROVIDER_URL
from .test_fair_use import QUEUED_RESPONSE, assert_refused, new_threads, post

REPORT = reverse("admin:assistants_app_usagereport_changelist")


@pytest.fixture
def provider():
    """The provider accepts runs; they stay queued until a test finishes them."""
    with respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=False) as mock:
        mock.post("/conversations").respond(
            json={"id": "conv_1", "object": "conversation", "created_at": 1, "metadata": {}}
        )
        mock.post("/responses").respond(json=QUEUED_RESPONSE)
        yield mock


def finish(run: Run, tokens: int) -> None:
    """The provider reports the run done, having used `tokens`, as the driver records it."""
    run = Run.objects.select_related("thread").get(pk=run.pk)
    spent = Usage(input_tokens=tokens // 2, output_tokens=tokens - tokens // 2, total_tokens=tokens)
    async_to_sync(runs.record)(run, RunUpdate(status=RunStatus.COMPLETED, usage=spent))


def test_deleting_a_thread_does_not_give_back_the_tokens_it_spent(
    alice_client, alice, assistant, provider, settings
):
    settings.DAILY_TOKEN_BUDGET = 300
    spender, later = new_threads(alice, assistant, 2)
    assert post(alice_client, spender, "a long question").status_code == 201
    finish(spender.runs.get(), tokens=300)

    response = alice_client.post(f"/threads/{spender.pk}/delete/")

    assert response.status_code == 302 and not Thread.objects.filter(pk=spender.pk).exists()
    assert limits.tokens_used_today(alice) == 300
    assert_refused(post(alice_client, later, "and another"), "TOKEN_BUDGET_SPENT", later)


def test_answers_in_flight_count_against_the_budget_until_they_report_their_usage(
    alice_client, alice, assistant, provider, settings
):
    settings.DAILY_TOKEN_BUDGET = 500  # less than one answer is expected to take
    first, second, third = new_threads(alice, assistant, 3)
    assert post(alice_client, first, "the first").status_code == 201

    # The first answer is still being written: it is charged an estimate meanwhile.
    assert limits.tokens_used_today(alice) >= usage.ANSWER_TOKENS_ESTIMATE
    assert_refused(post(alice_client, second, "at the same time"), "TOKEN_BUDGET_SPENT", second)

    finish(first.runs.get(), tokens=120)  # it ends costing less than the estimate
    assert limits.tokens_used_today(alice) == 120
    assert post(alice_client, third, "now there is room").status_code == 201


def test_the_estimate_grows_with_what_the_run_sends(alice, alice_thread):
    alice_thread.messages.create(role="user", text="x" * 40_000)
    run = Run.objects.create(thread=alice_thread)

    record = usage.reserve(run)

    assert record.charged_tokens == (40_000 + len("Answer briefly.")) // 4 + 1_000


def test_a_run_that_reports_no_usage_is_charged_nothing_once_it_ends(alice, alice_thread):
    run = Run.objects.create(thread=alice_thread)
    usage.reserve(run)
    async_to_sync(runs.record)(run, RunUpdate(status=RunStatus.FAILED, error_code="x"))
    assert UsageRecord.objects.get(run=run).charged_tokens == 0
    assert limits.tokens_used_today(alice) == 0


def test_the_usage_report_keeps_a_deleted_threads_history(
    alice_client, staff_client, alice, assistant, provider
):
    thread = new_threads(alice, assistant, 1)[0]
    assert post(alice_client, thread, "a question").status_code == 201
    finish(thread.runs.get(), tokens=300)
    services.delete_thread(alice, thread)

    response = staff_client.get(REPORT)

    row = {r["name"]: r for r in response.context["users"].object_list}["alice"]
    assert (row["runs"], row["total_tokens"]) == (1, 300)
    assert response.context["totals"]["total_tokens"] == 300


def test_a_send_that_is_not_stored_does_not_spend_the_minute(
    alice, alice_thread, monkeypatch, settings, provider
):
    settings.MESSAGES_PER_MINUTE = 1
    from django.db import IntegrityError

    insert = prepared.insert

    def lost_race(instance, **kwargs):  # another tab's run was stored first
        if isinstance(instance, Run):
            raise IntegrityError("one_active_run_per_thread")
        return insert(instance, **kwargs)

    monkeypatch.setattr(prepared, "insert", lost_race)
    thread = Thread.objects.select_related("assistant").get(pk=alice_thread.pk)
    with pytest.raises(RunActive):
        async_to_sync(services.submit_message)(alice, thread, "double click")
    monkeypatch.undo()

    assert limits.peek_window(f"messages:{alice.pk}", 60) == 0
    async_to_sync(services.submit_message)(alice, thread, "sent again")  # the minute is intact


def test_the_migration_enters_existing_runs_in_the_ledger(alice, bob_thread, alice_thread):
    Run.objects.create(thread=alice_thread, status=RunStatus.COMPLETED, total_tokens=70)
    Run.objects.create(thread=bob_thread, status=RunStatus.FAILED)
    migration = importlib.import_module("assistants_app.migrations.0006_usage_ledger")

    migration.ledger_from_runs(apps, schema_editor=None)

    ledger = {r.user.username: r for r in UsageRecord.objects.select_related("user")}
    assert (ledger["alice"].charged_tokens, ledger["alice"].status) == (70, RunStatus.COMPLETED)
    assert (ledger["bob"].charged_tokens, ledger["bob"].status) == (0, RunStatus.FAILED)
