"""Retention: threads untouched for THREAD_RETENTION_DAYS are deleted with their messages and
runs, by the worker loop and by `manage.py apply_retention`; what they spent stays counted."""

from datetime import timedelta
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command
from django.utils import timezone

from assistants_app import limits, retention, worker
from assistants_app.models import AuditEntry, Message, Run, RunStatus, Thread, UsageRecord


def thread_last_active(owner, assistant, days_ago: float, status=RunStatus.COMPLETED) -> Thread:
    """A thread whose last message and answer are `days_ago` old, its run charged 100 tokens."""
    thread = Thread.objects.create(owner=owner, assistant=assistant, title=f"{days_ago} days")
    prompt = Message.objects.create(thread=thread, role="user", text="Hello")
    run = Run.objects.create(thread=thread, prompt=prompt, status=status)
    Message.objects.create(thread=thread, role="assistant", text="Hi", run=run)
    UsageRecord.objects.create(run=run, user=owner, assistant=assistant, charged_tokens=100)
    then = timezone.now() - timedelta(days=days_ago)
    Thread.objects.filter(pk=thread.pk).update(updated_at=then)
    Message.objects.filter(thread=thread).update(created_at=then)
    return thread


@pytest.fixture
def retention_days(settings):
    settings.THREAD_RETENTION_DAYS = 30
    return settings


def test_threads_untouched_past_the_limit_go_with_messages_and_runs(
    retention_days, alice, bob, assistant
):
    old = thread_last_active(alice, assistant, days_ago=31)
    bobs_old = thread_last_active(bob, assistant, days_ago=45)
    recent = thread_last_active(alice, assistant, days_ago=29)
    assert retention.delete_expired_threads() == 2
    assert list(Thread.objects.all()) == [recent]
    assert not Message.objects.filter(thread_id__in=[old.pk, bobs_old.pk]).exists()
    assert not Run.objects.filter(thread_id__in=[old.pk, bobs_old.pk]).exists()


def test_what_deleted_threads_spent_still_counts_against_the_budget(
    retention_days, alice, assistant
):
    thread_last_active(alice, assistant, days_ago=0.1)
    thread_last_active(alice, assistant, days_ago=40)
    UsageRecord.objects.update(created_at=timezone.now())  # both spent today
    assert limits.tokens_used_today(alice) == 200
    retention.delete_expired_threads()
    assert Thread.objects.count() == 1
    assert limits.tokens_used_today(alice) == 200
    assert UsageRecord.objects.filter(run=None).count() == 1


def test_a_thread_with_a_recent_message_or_an_answer_in_progress_stays(
    retention_days, alice, assistant
):
    written_to = thread_last_active(alice, assistant, days_ago=60)
    Message.objects.create(thread=written_to, role="user", text="Still here?")
    answering = thread_last_active(alice, assistant, days_ago=60, status=RunStatus.IN_PROGRESS)
    assert retention.delete_expired_threads() == 0
    assert set(Thread.objects.all()) == {written_to, answering}


def test_nothing_is_deleted_when_retention_is_off(settings, alice, assistant):
    settings.THREAD_RETENTION_DAYS = 0
    thread_last_active(alice, assistant, days_ago=3000)
    assert retention.delete_expired_threads() == 0
    assert Thread.objects.count() == 1


def test_deleting_in_batches_gets_them_all(retention_days, alice, assistant, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 2)
    for _ in range(5):
        thread_last_active(alice, assistant, days_ago=90)
    assert retention.delete_expired_threads() == 5
    assert not Thread.objects.exists()


def test_a_sweep_is_written_in_the_audit_log(retention_days, alice, assistant):
    thread_last_active(alice, assistant, days_ago=90)
    retention.delete_expired_threads()
    entry = AuditEntry.objects.get(action=AuditEntry.Action.DATA_DELETED)
    assert (entry.target_type, entry.via, entry.changes) == (
        "threads", "system", {"threads": 1, "retention_days": 30}
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
async def test_the_worker_loop_sweeps(retention_days, alice, assistant):
    await sync_to_async(thread_last_active)(alice, assistant, days_ago=31)
    kept = await sync_to_async(thread_last_active)(alice, assistant, days_ago=1)
    await worker.work(interval=0.01, once=True)
    assert [thread.pk async for thread in Thread.objects.all()] == [kept.pk]


@pytest.mark.django_db(transaction=True)
async def test_the_worker_sweeps_at_most_every_interval(retention_days, monkeypatch):
    sweeps = []

    def counting(*args, **kwargs):
        sweeps.append(1)
        return 0

    monkeypatch.setattr(retention, "delete_expired_threads", counting)
    sweeper = retention.Sweeper(interval=3600)
    await sweeper.sweep_if_due()
    await sweeper.sweep_if_due()
    assert len(sweeps) == 1


def test_the_command_sweeps_once(retention_days, alice, assistant):
    thread_last_active(alice, assistant, days_ago=31)
    out = StringIO()
    call_command("apply_retention", stdout=out)
    assert out.getvalue() == "Deleted 1 thread(s) untouched for 30 days.\n"


def test_the_command_takes_days_and_refuses_nonsense(settings, alice, assistant):
    settings.THREAD_RETENTION_DAYS = 0
    thread_last_active(alice, assistant, days_ago=8)
    out = StringIO()
    call_command("apply_retention", stdout=out)
    assert "Retention is off" in out.getvalue() and Thread.objects.count() == 1
    call_command("apply_retention", "--days", "7", stdout=out)
    assert not Thread.objects.exists()
    with pytest.raises(CommandError, match="--days must be 1 or more"):
        call_command("apply_retention", "--days", "0")
