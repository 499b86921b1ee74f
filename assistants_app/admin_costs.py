"""Admin for money and group budgets: prices per model (costs.py) and what each group may
spend (budgets.py). Imported by admin.py; the usage report itself is UsageAdmin there."""

from django.conf import settings
from django.contrib import admin

from . import budgets, costs
from .models import GroupBudget, ModelPrice


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = [
        "model", "provider_shown", "input_per_million", "cached_input_per_million",
        "output_per_million",
    ]  # fmt: skip
    search_fields = ["model", "provider"]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        for name in ("input_per_million", "cached_input_per_million", "output_per_million"):
            form.base_fields[name].help_text = f"{settings.COST_CURRENCY} per million tokens." + (
                " Empty: the input price." if name.startswith("cached") else ""
            )
        return form

    @admin.display(description="Provider", ordering="provider")
    def provider_shown(self, obj):
        return obj.provider or "any"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        priced = costs.price_unpriced(obj)
        if priced:
            self.message_user(
                request, f"Priced {priced:,} past run(s) of {obj.model} that had none."
            )


@admin.register(GroupBudget)
class GroupBudgetAdmin(admin.ModelAdmin):
    """What a group's members may spend together; a user in several groups is held to each."""

    list_display = [
        "group", "tokens_per_day", "tokens_per_month", "cost_per_day", "cost_per_month",
        "spent_today", "spent_this_month",
    ]  # fmt: skip
    list_select_related = ["group"]
    search_fields = ["group__name"]
    readonly_fields = ["spent_today", "spent_this_month"]

    @admin.display(description="Spent today (UTC)")
    def spent_today(self, obj):
        if not obj.pk:
            return "-"
        spent = budgets.spent(obj)
        return f"{spent.tokens_today:,} tokens · {spent.cost_today:,.2f} {settings.COST_CURRENCY}"

    @admin.display(description="Spent this month (UTC)")
    def spent_this_month(self, obj):
        if not obj.pk:
            return "-"
        spent = budgets.spent(obj)
        return (
            f"{spent.tokens_this_month:,} tokens · "
            f"{spent.cost_this_month:,.2f} {settings.COST_CURRENCY}"
        )
