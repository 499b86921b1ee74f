"""Admin's usage report: runs, failures and tokens per user and per assistant over a period."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from assistants_app.models import Assistant, Run, RunStatus, Thread, UsageRecord

pytestmark = pytest.mark.django_db

URL = reverse("admin:assistants_app_usagereport_changelist")


def add_runs(thread, count, status=RunStatus.COMPLETED, tokens=10, days_ago=0):
    """Finished runs, in the ledger as the driver leaves them."""
    when = timezone.now() - timedelta(days=days_ago)
    figures = {"status": status, "created_at": when, "input_tokens": tokens // 2,
               "output_tokens": tokens - tokens // 2, "total_tokens": tokens}  # fmt: skip
    runs = Run.objects.bulk_create(Run(thread=thread, **figures) for _ in range(count))
    UsageRecord.objects.bulk_create(
        UsageRecord(run=run, user_id=thread.owner_id, assistant_id=thread.assistant_id,
                    charged_tokens=tokens, **figures)
        for run in runs
    )  # fmt: skip


def rows_by_name(page):
    return {row["name"]: row for row in page.object_list}


def test_it_is_for_staff_only(alice_client):
    response = alice_client.get(URL)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_it_counts_runs_failures_and_tokens_per_user_and_assistant(
    staff_client, alice_thread, bob_thread, bob
):
    translator = Assistant.objects.create(name="Translator", model="m", provider="test")
    bob_translating = Thread.objects.create(owner=bob, assistant=translator)
    add_runs(alice_thread, 3, tokens=10)
    add_runs(alice_thread, 1, status=RunStatus.FAILED, tokens=0)
    add_runs(bob_thread, 2, status=RunStatus.EXPIRED, tokens=4)
    add_runs(bob_translating, 5, tokens=100)
    add_runs(bob_translating, 7, days_ago=40)  # outside the default 30 days

    response = staff_client.get(URL)

    users = rows_by_name(response.context["users"])
    assert (users["alice"]["runs"], users["alice"]["failed"], users["alice"]["total_tokens"]) == (
        4, 1, 30,
    )  # fmt: skip
    assert (users["bob"]["runs"], users["bob"]["failed"], users["bob"]["total_tokens"]) == (
        7, 2, 508,
    )  # fmt: skip
    assistants = rows_by_name(response.context["assistants"])
    assert (assistants["Helper"]["runs"], assistants["Helper"]["failed"]) == (6, 3)
    assert (assistants["Translator"]["runs"], assistants["Translator"]["output_tokens"]) == (5, 250)
    assert response.context["totals"]["runs"] == 11
    today = timezone.localdate()
    assert f'value="{today.isoformat()}"' in response.content.decode()  # the period shown
    assert b"Per user" in response.content and b"Translator" in response.content


def test_it_reports_a_chosen_period(staff_client, alice_thread):
    add_runs(alice_thread, 2, days_ago=0)
    add_runs(alice_thread, 3, days_ago=40)
    day = (timezone.localdate() - timedelta(days=40)).isoformat()

    response = staff_client.get(URL, {"since": day, "until": day})

    assert rows_by_name(response.context["users"])["alice"]["runs"] == 3


def test_it_refuses_a_period_that_ends_before_it_starts(staff_client, alice_thread):
    response = staff_client.get(URL, {"since": "2026-02-01", "until": "2026-01-01"})
    assert b"must not be after its end" in response.content
    assert "users" not in response.context


def test_it_stays_a_few_queries_with_thousands_of_runs(
    staff_client, django_user_model, assistant, django_assert_max_num_queries
):
    for number in range(120):
        user = django_user_model.objects.create_user(f"user{number:03}")
        add_runs(Thread.objects.create(owner=user, assistant=assistant), 25)

    # Session and user, totals, the models without a price, and a count and a page for each
    # of the four tables (users, groups, assistants, days): however many runs there are.
    with django_assert_max_num_queries(13):
        response = staff_client.get(URL)

    users = response.context["users"]
    assert users.paginator.count == 120
    assert len(users.object_list) == 50
    assert response.context["totals"]["runs"] == 3000
    assert "user_page=2" in users.next_url
