"""Staff's settings that every send reads are kept per process for a few seconds
(assistants_app/config_cache.py), and a change staff make still counts from the next send:
at once when made in this process (admin saves), within the cache's seconds when made
elsewhere (another process, or a write that bypasses save())."""

import pytest
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.db import transaction

from assistants_app import assistant_versions, config_cache, limits
from assistants_app.config_cache import ConfigCache
from assistants_app.models import (
    AssistantVersion,
    GroupBudget,
    KnowledgeDocument,
    Thread,
    UsageLimit,
)

from .test_fair_use import active_runs, assert_refused, post, provider  # noqa: F401 (a fixture)
from .test_group_budgets import spend

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("provider")]


@pytest.fixture
def later(monkeypatch):
    """Move the caches' clock past their seconds."""
    now = config_cache._clock()

    def move():
        monkeypatch.setattr(config_cache, "_clock", lambda: now + config_cache.SECONDS + 1)

    return move


def sends(client, user, assistant) -> int:
    """A send in a new thread: its status code."""
    return post(client, Thread.objects.create(owner=user, assistant=assistant), "Hi").status_code


def test_a_limit_staff_set_counts_from_the_next_send(alice_client, alice, assistant):
    assert sends(alice_client, alice, assistant) == 201  # no limit of her own: remembered
    active_runs(alice, assistant, 1)
    UsageLimit.objects.create(user=alice, concurrent_runs=2)  # she has 2 answers going now

    thread = Thread.objects.create(owner=alice, assistant=assistant)
    assert_refused(post(alice_client, thread, "Hi"), "TOO_MANY_RUNS", thread)


def test_a_limit_changed_behind_saves_back_counts_within_the_caches_seconds(
    alice_client, alice, assistant, later
):
    UsageLimit.objects.create(user=alice, concurrent_runs=5)
    assert sends(alice_client, alice, assistant) == 201
    UsageLimit.objects.filter(user=alice).update(concurrent_runs=1)  # no signal: as elsewhere
    assert sends(alice_client, alice, assistant) == 201  # the limit as read before

    later()
    thread = Thread.objects.create(owner=alice, assistant=assistant)
    assert_refused(post(alice_client, thread, "Hi"), "TOO_MANY_RUNS", thread)


def test_a_group_budget_set_counts_from_the_next_send(alice_client, alice, assistant):
    lab = Group.objects.create(name="Lab")
    lab.user_set.add(alice)
    spend(alice, assistant, 500)
    assert sends(alice_client, alice, assistant) == 201  # no group has a budget: remembered

    GroupBudget.objects.create(group=lab, tokens_per_day=100)

    thread = Thread.objects.create(owner=alice, assistant=assistant)
    assert_refused(post(alice_client, thread, "Hi"), "GROUP_BUDGET_SPENT", thread)


def test_joining_a_group_with_a_budget_counts_from_the_next_send(
    alice_client, alice, bob, assistant
):
    lab = Group.objects.create(name="Lab")
    lab.user_set.add(bob)
    GroupBudget.objects.create(group=lab, tokens_per_day=100)
    spend(bob, assistant, 500)
    assert sends(alice_client, alice, assistant) == 201  # in no group: remembered

    alice.groups.add(lab)

    thread = Thread.objects.create(owner=alice, assistant=assistant)
    assert_refused(post(alice_client, thread, "Hi"), "GROUP_BUDGET_SPENT", thread)
    # Her runs from now on are the group's: the ledger records the group with her next one.
    assert list(spend(alice, assistant, 1).groups.all()) == [lab]


def test_a_run_records_the_version_with_a_document_added_since_the_last(
    alice, assistant, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    thread = Thread.objects.create(owner=alice, assistant=assistant)
    before = assistant_versions.current_id(thread.assistant)  # remembered
    KnowledgeDocument.objects.create(
        assistant=assistant, name="handbook.md", content_type="text/markdown", size=2,
        file=ContentFile(b"hi", name="handbook.md"),
    )  # fmt: skip

    now = assistant_versions.current_id(thread.assistant)

    assert now != before
    assert AssistantVersion.objects.get(pk=now).values["knowledge"][0].startswith("handbook.md")
    assert thread.assistant.has_documents


def test_a_run_records_the_version_of_fields_changed_behind_saves_back(alice, assistant):
    thread = Thread.objects.create(owner=alice, assistant=assistant)
    before = assistant_versions.current_id(thread.assistant)  # remembered
    type(assistant).objects.filter(pk=assistant.pk).update(instructions="Be terse.")
    thread.assistant.refresh_from_db()

    now = assistant_versions.current_id(thread.assistant)

    assert now != before  # its fields are compared on every run, not remembered
    assert AssistantVersion.objects.get(pk=now).values["instructions"] == "Be terse."


def test_what_was_read_while_a_change_came_is_not_kept():
    cache = ConfigCache("test-race")
    reads = []

    def read_while_changed():
        reads.append(1)
        cache.clear()  # a change saved meanwhile, as a signal clears it
        return "old"

    assert cache.get("key", read_while_changed) == "old"
    assert cache.get("key", lambda: "new") == "new"  # read again, not the old value
    assert cache.get("key", lambda: "newer") == "new"  # and now kept
    assert reads == [1]


@pytest.mark.django_db(transaction=True)
def test_a_change_clears_it_again_when_it_commits(alice):
    with transaction.atomic():
        UsageLimit.objects.create(user=alice, concurrent_runs=1)
        # What another thread would read between the change and its commit: the old value.
        limits._overrides.get(alice.pk, lambda: "before the commit")

    assert limits._overrides.get(alice.pk, lambda: "after the commit") == "after the commit"
