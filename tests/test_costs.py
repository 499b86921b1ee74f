"""Costs: prices per model set in admin, the cost of each run kept in the ledger (cached input
tokens at their own price), the usage report's cost per user, group, assistant and day, and its
CSV download."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from assistants_app import costs, usage
from assistants_app.engines.responses import to_run_update
from assistants_app.models import ModelPrice, Run, RunStatus, Thread, UsageRecord

from .provider_payloads import response

pytestmark = pytest.mark.django_db

URL = reverse("admin:assistants_app_usagereport_changelist")


@pytest.fixture
def price(db):
    return ModelPrice.objects.create(
        model="gpt-test",
        input_per_million=Decimal("2.00"),
        cached_input_per_million=Decimal("0.50"),
        output_per_million=Decimal("8.00"),
    )


def finish(thread: Thread, input_tokens=1000, cached=0, output=500, days_ago=0) -> Run:
    """A run started through the ledger (reserve) and ended with usage (settle)."""
    when = timezone.now() - timedelta(days=days_ago)
    run = Run.objects.create(thread=thread, created_at=when)
    usage.reserve(run)
    run.status = RunStatus.COMPLETED
    run.input_tokens, run.cached_input_tokens, run.output_tokens = input_tokens, cached, output
    run.total_tokens = input_tokens + output
    run.save()
    usage.settle(run)
    return run


def test_a_run_costs_its_tokens_at_the_models_prices(alice_thread, price):
    run = finish(alice_thread, input_tokens=1_000_000, cached=400_000, output=250_000)
    record = UsageRecord.objects.get(run=run)
    # 600k input at 2.00, 400k cached at 0.50, 250k output at 8.00 per million
    assert record.cost == Decimal("1.2") + Decimal("0.2") + Decimal("2.0")
    assert record.charged_cost == record.cost
    assert (record.model, record.provider) == ("gpt-test", "test")
    assert record.cached_input_tokens == 400_000


def test_a_run_is_priced_by_the_model_it_was_reserved_with(alice_thread, price):
    """Staff switch the assistant to another model while a run of the old one goes on: the
    run is charged at the old model's prices, the one its ledger entry names."""
    ModelPrice.objects.create(
        model="gpt-dearer", input_per_million=Decimal("20.00"), output_per_million=Decimal("80.00")
    )
    run = Run.objects.create(thread=alice_thread)
    usage.reserve(run)
    alice_thread.assistant.model = "gpt-dearer"  # as the driver loads the run after the change
    run.status, run.input_tokens, run.output_tokens = RunStatus.COMPLETED, 1_000_000, 250_000
    run.cached_input_tokens, run.total_tokens = 0, 1_250_000
    usage.settle(run)

    record = UsageRecord.objects.get(run=run)
    assert record.model == "gpt-test"
    assert record.cost == Decimal("2.0") + Decimal("2.0")  # gpt-test's prices
    assert (record.status, record.total_tokens) == (RunStatus.COMPLETED, 1_250_000)


def test_cached_input_without_its_own_price_costs_the_input_price(alice_thread, price):
    price.cached_input_per_million = None
    price.save()
    run = finish(alice_thread, input_tokens=1_000_000, cached=1_000_000, output=0)
    assert UsageRecord.objects.get(run=run).cost == Decimal("2")


def test_a_providers_own_price_wins_over_the_any_provider_price(alice_thread, price):
    ModelPrice.objects.create(
        provider="test", model="gpt-test", input_per_million=1, output_per_million=1
    )
    run = finish(alice_thread, input_tokens=500_000, output=500_000)
    assert UsageRecord.objects.get(run=run).cost == Decimal("1")


def test_money_is_exact_decimal(alice_thread, price):
    runs = [finish(alice_thread, input_tokens=1, output=1) for _ in range(3)]
    total = sum(UsageRecord.objects.get(run=run).cost for run in runs)
    assert total == Decimal("0.00003")  # 3 × (2 + 8) / 1e6, no float drift


def test_a_run_in_flight_is_charged_an_estimated_cost(alice_thread, price):
    run = Run.objects.create(thread=alice_thread)
    record = usage.reserve(run)
    assert record.cost is None
    # the answer's estimate of output tokens at the output price, at least
    assert record.charged_cost >= usage.ANSWER_TOKENS_ESTIMATE * Decimal(8) / 1_000_000


def test_a_model_without_a_price_costs_nothing_and_is_pointed_out(staff_client, alice_thread):
    run = finish(alice_thread)
    assert UsageRecord.objects.get(run=run).cost is None
    page = staff_client.get(URL).content.decode()
    assert "No price is set for gpt-test" in page


def test_a_price_set_later_prices_the_runs_that_had_none(staff_client, alice_thread):
    runs = [finish(alice_thread, input_tokens=1_000_000, output=0) for _ in range(2)]
    response = staff_client.post(
        reverse("admin:assistants_app_modelprice_add"),
        {"model": "gpt-test", "provider": "", "input_per_million": "3",
         "cached_input_per_million": "", "output_per_million": "5"},  # fmt: skip
        follow=True,
    )
    assert "Priced 2 past run(s) of gpt-test" in response.content.decode()
    assert [UsageRecord.objects.get(run=run).cost for run in runs] == [Decimal(3)] * 2


def test_the_responses_engine_reads_cached_input_tokens():
    payload = response("completed", text="Hi")
    payload["usage"] = {
        "input_tokens": 120,
        "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 0},
        "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 125,
    }  # fmt: skip
    from openai.types.responses import Response

    update = to_run_update(Response.model_validate(payload), {})
    assert (update.usage.input_tokens, update.usage.cached_input_tokens) == (120, 100)


@pytest.fixture
def teams(alice, bob):
    physics, chemistry = Group.objects.create(name="Physics"), Group.objects.create(name="Chem")
    alice.groups.add(physics, chemistry)
    bob.groups.add(physics)
    return physics, chemistry


def test_the_report_shows_cost_per_user_group_assistant_and_day(
    staff_client, alice_thread, bob_thread, teams, price
):
    finish(alice_thread, input_tokens=1_000_000, output=0)  # 2.00
    finish(bob_thread, input_tokens=0, output=1_000_000)  # 8.00
    finish(bob_thread, input_tokens=0, output=1_000_000, days_ago=1)  # 8.00
    context = staff_client.get(URL).context

    def by_name(page):
        return {str(row["name"]): row["cost"] for row in page.object_list}

    assert by_name(context["users"]) == {"alice": Decimal(2), "bob": Decimal(16)}
    assert by_name(context["groups"]) == {"Physics": Decimal(18), "Chem": Decimal(2)}
    assert by_name(context["assistants"]) == {"Helper": Decimal(18)}
    assert [row["cost"] for row in context["days"].object_list] == [Decimal(8), Decimal(10)]
    assert context["totals"]["cost"] == Decimal(18)
    assert "18.0000 USD" in staff_client.get(URL).content.decode()


def test_the_report_downloads_as_csv(staff_client, alice_thread, teams, price, alice):
    finish(alice_thread, input_tokens=1_000_000, cached=500_000, output=0)
    response = staff_client.get(URL, {"format": "csv"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    by = {(row["by"], row["name"]): row for row in rows}
    assert set(by) == {
        ("user", "alice"), ("group", "Physics"), ("group", "Chem"), ("assistant", "Helper"),
        ("day", timezone.localdate().isoformat()),
    }  # fmt: skip
    alice_row = by[("user", "alice")]
    assert alice_row["cost"] == "1.250000" and alice_row["currency"] == "USD"
    assert alice_row["cached_input_tokens"] == "500000"


def test_the_csv_never_holds_a_formula(staff_client, django_user_model, assistant):
    mallory = django_user_model.objects.create_user("=HYPERLINK(evil)")
    finish(Thread.objects.create(owner=mallory, assistant=assistant))
    rows = list(csv.reader(io.StringIO(staff_client.get(URL, {"format": "csv"}).content.decode())))
    assert ["user", "'=HYPERLINK(evil)"] == rows[1][:2]


def test_the_csv_is_for_staff_only(alice_client):
    response = alice_client.get(URL, {"format": "csv"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_cost_of_never_counts_more_cached_than_input(price):
    assert costs.cost_of(price, 10, 50, 0) == Decimal(10) * Decimal("0.5") / 1_000_000


def test_the_chat_engine_reads_cached_input_tokens():
    from assistants_app.engines.chat import _usage_of

    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 5,
                                      "total_tokens": 55,
                                      "prompt_tokens_details": {"cached_tokens": 30}}}  # fmt: skip
    usage = _usage_of(chunk)
    assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens) == (50, 30, 5)


def test_the_driver_keeps_cached_input_tokens_and_the_cost_on_the_run_and_ledger(
    alice_thread, price
):
    from asgiref.sync import async_to_sync

    from assistants_app import runs
    from assistants_app.engines.base import RunUpdate, Usage

    run = Run.objects.create(thread=alice_thread)
    usage.reserve(run)
    run = Run.objects.select_related("thread__assistant").get(pk=run.pk)
    spent = Usage(
        input_tokens=1_000_000, output_tokens=0, total_tokens=1_000_000,
        cached_input_tokens=1_000_000,
    )  # fmt: skip
    async_to_sync(runs.record)(run, RunUpdate(status=RunStatus.COMPLETED, usage=spent))
    run.refresh_from_db()
    assert run.cached_input_tokens == 1_000_000
    assert UsageRecord.objects.get(run=run).cost == Decimal("0.5")
