"""Money: what runs cost at the prices staff set per model (ModelPrice, per million tokens of
input, cached input and output), and the usage report as CSV.

A run's cost is worked out when it ends and kept in the usage ledger (UsageRecord.cost), so a
later price change does not rewrite what was spent; a price set for a model that had none
prices the runs that ended without one (`price_unpriced`). Money is Decimal throughout.
"""

import csv
import io
from collections.abc import Iterable
from decimal import Decimal

from django.conf import settings
from django.db.models import Q, QuerySet

from .config_cache import ConfigCache
from .models import Assistant, ModelPrice, UsageRecord

MILLION = Decimal(1_000_000)


def model_of(assistant: Assistant) -> str:
    """The model an assistant's runs use: its own, or its provider's default."""
    provider = settings.ASSISTANT_PROVIDERS.get(assistant.provider, {})
    return assistant.model or provider.get("default_model") or ""


# Every run reads its price twice (reserve, settle); prices change a few times a year.
_prices = ConfigCache("prices", models=[ModelPrice])


def price_for(provider: str, model: str) -> ModelPrice | None:
    """The model's price on that provider, or else its price on any provider; None: unpriced."""
    if not model:
        return None

    def read() -> ModelPrice | None:
        prices = ModelPrice.objects.filter(model=model, provider__in=[provider, ""])
        return max(prices, key=lambda price: price.provider != "", default=None)

    return _prices.get((provider, model), read)


def cost_of(
    price: ModelPrice, input_tokens: int | None, cached_input_tokens: int | None,
    output_tokens: int | None,
) -> Decimal:  # fmt: skip
    input_tokens = input_tokens or 0
    cached = min(cached_input_tokens or 0, input_tokens)  # cached tokens are input tokens too
    cached_price = price.cached_input_per_million
    if cached_price is None:
        cached_price = price.input_per_million
    return (
        (input_tokens - cached) * price.input_per_million
        + cached * cached_price
        + (output_tokens or 0) * price.output_per_million
    ) / MILLION


def settled_cost(record: UsageRecord) -> Decimal | None:
    """What an ended run cost, from the tokens it reported; None when its model has no price."""
    price = price_for(record.provider, record.model)
    if price is None:
        return None
    return cost_of(
        price, record.input_tokens, record.cached_input_tokens, record.output_tokens
    ).quantize(Decimal("0.00000001"))


def price_unpriced(price: ModelPrice) -> int:
    """Price the ended runs of `price`'s model that have no cost yet (a price set after the
    fact); how many. A price for any provider leaves providers that have their own price."""
    records = UsageRecord.objects.filter(model=price.model, cost__isnull=True).exclude(
        total_tokens__isnull=True
    )
    if price.provider:
        records = records.filter(provider=price.provider)
    else:
        own = ModelPrice.objects.filter(model=price.model).exclude(provider="")
        records = records.exclude(provider__in=own.values("provider"))
    changed = []
    for record in records.iterator(chunk_size=500):
        record.cost = record.charged_cost = cost_of(
            price, record.input_tokens, record.cached_input_tokens, record.output_tokens
        ).quantize(Decimal("0.00000001"))
        changed.append(record)
    UsageRecord.objects.bulk_update(changed, ["cost", "charged_cost"], batch_size=500)
    return len(changed)


def unpriced_models(records: QuerySet[UsageRecord]) -> list[str]:
    """Models of ended runs in `records` that no price covers, for the report to point out."""
    ended = records.filter(cost__isnull=True).exclude(Q(total_tokens__isnull=True) | Q(model=""))
    return sorted(set(ended.values_list("model", flat=True)))


# --- CSV ------------------------------------------------------------------------------

CSV_COLUMNS = [
    "runs", "failed", "input_tokens", "cached_input_tokens", "output_tokens", "total_tokens",
    "cost",
]  # fmt: skip


def report_csv(tables: Iterable[tuple[str, Iterable[dict]]]) -> str:
    """The report's tables as one CSV: a row per user, group, assistant and day, the first
    column saying which ("by"), then its name and figures."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["by", "name", *CSV_COLUMNS, "currency"])
    for kind, rows in tables:
        for row in rows:
            figures = [_cell(row.get(column)) for column in CSV_COLUMNS]
            writer.writerow([kind, _safe(row["name"]), *figures, settings.COST_CURRENCY])
    return out.getvalue()


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value.quantize(Decimal('0.000001')):f}"
    return str(value)


def _safe(name) -> str:
    """A name a spreadsheet shows as text, never runs as a formula (CSV injection: a user
    named "=HYPERLINK(...)")."""
    name = "" if name is None else str(name)
    return "'" + name if name[:1] in ("=", "+", "-", "@", "\t", "\r") else name
