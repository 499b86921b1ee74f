"""Staff manage assistants here; threads and runs are shown read-only for support."""

import asyncio
import logging

from asgiref.sync import async_to_sync
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from . import limits, tools, usage
from .assistants_sync import has_remote_assistant, sync_assistant
from .engines import capabilities
from .engines.client import list_models
from .exceptions import ProviderError
from .models import (
    Assistant,
    Message,
    ProviderCapabilities,
    Run,
    Thread,
    UsageLimit,
    UsageReport,
)

log = logging.getLogger(__name__)

PROVIDER_CHECK_SECONDS = 3.0  # the status page waits no longer for a provider


class AssistantForm(forms.ModelForm):
    tools = forms.MultipleChoiceField(
        choices=tools.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Functions the assistant may call (engines with tool support).",
    )

    class Meta:
        model = Assistant
        fields = ["tools"]  # the admin adds the others from its fieldsets


@admin.register(Assistant)
class AssistantAdmin(admin.ModelAdmin):
    form = AssistantForm
    list_display = ["name", "model", "engine", "provider", "is_active", "updated_at"]
    list_filter = ["is_active", "engine", "provider"]
    search_fields = ["name", "description", "instructions", "model"]
    readonly_fields = ["remote_id", "created_at", "updated_at"]
    filter_horizontal = ["groups"]
    actions = ["deactivate", "activate", "sync_with_provider"]
    fieldsets = [
        (None, {"fields": ["name", "description", "instructions", "is_active"]}),
        (
            "Model",
            {"fields": ["engine", "provider", "model", "context_tokens", "temperature", "tools"]},
        ),
        ("Access", {"fields": ["groups"]}),
        ("Provider state", {"fields": ["remote_id", "created_at", "updated_at"]}),
    ]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        provider = form.base_fields["provider"]
        provider.widget = forms.Select(
            choices=[
                (name, f"{name} ({entry['label']})")
                for name, entry in sorted(settings.ASSISTANT_PROVIDERS.items())
            ]
        )
        provider.help_text = "Providers are declared in the environment (README, Providers)."
        if obj is None:
            provider.initial = settings.DEFAULT_PROVIDER
        return form

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        self._sync(request, obj)

    def _sync(self, request, assistant: Assistant) -> bool:
        """Push the assistant to its provider; a refusal is shown and the saved row is kept."""
        try:
            sync_assistant(assistant)
        except ProviderError as error:
            messages.error(
                request,
                f"“{assistant}” is saved here, but its provider refused the update: "
                f"{error.message} The next run sends these settings again.",
            )
            return False
        return True

    @admin.action(description="Sync selected assistants with their provider")
    def sync_with_provider(self, request, queryset):
        syncable = [a for a in queryset if has_remote_assistant(a)]
        synced = sum(1 for assistant in syncable if self._sync(request, assistant))
        self.message_user(request, f"Synced {synced} assistant(s) with their provider.")
        if skipped := queryset.count() - len(syncable):
            self.message_user(
                request, f"Skipped {skipped}: their engine keeps no assistant on the provider."
            )

    def get_urls(self):
        status = path(
            "providers/",
            self.admin_site.admin_view(self.provider_status),
            name="assistants_app_provider_status",
        )
        return [status, *super().get_urls()]

    def provider_status(self, request):
        """Every configured provider, whether its `/models` answers right now, and what it
        was found to offer; a POST checks that anew for one provider."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self._check_provider(request, request.POST.get("provider", ""))
        providers = async_to_sync(check_providers)(settings.ASSISTANT_PROVIDERS)
        known = {row.provider: row for row in ProviderCapabilities.objects.all()}
        for provider in providers:
            provider["capabilities"] = known.get(provider["name"])
        context = {
            **self.admin_site.each_context(request),
            "title": "Providers",
            "opts": self.model._meta,
            "providers": providers,
        }
        return TemplateResponse(request, "admin/assistants_app/provider_status.html", context)

    def _check_provider(self, request, name: str):
        if not self.has_change_permission(request):
            raise PermissionDenied
        provider = settings.ASSISTANT_PROVIDERS.get(name)
        if provider is None:
            self.message_user(request, f"No provider named {name!r}.", messages.ERROR)
        else:
            try:
                found = async_to_sync(check_capabilities)(name, provider)
            except ProviderError as error:
                self.message_user(request, f"{name}: {error.message}", messages.ERROR)
            else:
                self.message_user(request, f"Checked {name}: {', '.join(found) or 'no extras'}.")
        return redirect("admin:assistants_app_provider_status")

    @admin.action(description="Deactivate selected assistants")
    def deactivate(self, request, queryset):
        self.message_user(request, f"Deactivated {queryset.update(is_active=False)} assistant(s).")

    @admin.action(description="Activate selected assistants")
    def activate(self, request, queryset):
        self.message_user(request, f"Activated {queryset.update(is_active=True)} assistant(s).")


async def check_capabilities(name: str, provider: dict) -> list[str]:
    """Find out anew what a provider offers (capabilities.py), with its default model or
    else the first it lists; the names of what it has. Raises ProviderError."""
    model = provider.get("default_model") or ((await list_models(provider, 10.0)) or [""])[0]
    entry = {**provider, "name": name}
    found = await capabilities.probe(entry, model)
    await capabilities.save(name, found)
    return [key for key in CAPABILITY_NAMES if getattr(found, key)]


CAPABILITY_NAMES = (
    "responses", "conversations", "background", "streamed_retrieve", "cancel",
    "previous_response_id", "tokenizer",
)  # fmt: skip


async def check_providers(providers: dict) -> list[dict]:
    """Each provider's entry (without its key) and how it answered, all asked at once."""

    async def check(name: str, provider: dict) -> dict:
        shown = {key: value for key, value in provider.items() if key != "api_key"}
        try:
            models = await list_models(provider, timeout=PROVIDER_CHECK_SECONDS)
        except ProviderError as error:
            return {**shown, "name": name, "answers": False, "problem": error.message}
        except Exception:
            # A page about broken providers must not break on one (an HTML page, a bad body).
            log.warning("provider %s: unexpected answer to /models", name, exc_info=True)
            problem = "It answered, but not with a model list: does the base URL end in /v1?"
            return {**shown, "name": name, "answers": False, "problem": problem}
        return {**shown, "name": name, "answers": True, "models": models}

    return await asyncio.gather(*(check(n, p) for n, p in sorted(providers.items())))


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class MessageInline(ReadOnlyInline):
    model = Message
    fields = ["created_at", "role", "text", "remote_id", "run"]
    readonly_fields = fields


class RunInline(ReadOnlyInline):
    model = Run
    fields = [
        "created_at", "status", "remote_id", "error_code", "total_tokens", "usage_estimated",
        "finished_at",
    ]  # fmt: skip
    readonly_fields = fields


@admin.register(Thread)
class ThreadAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "assistant", "created_at", "updated_at"]
    list_filter = ["assistant"]
    list_select_related = ["owner", "assistant"]
    search_fields = ["title", "owner__username", "remote_id"]
    readonly_fields = ["owner", "assistant", "title", "remote_id", "created_at", "updated_at"]
    inlines = [MessageInline, RunInline]

    def has_add_permission(self, request):
        return False


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = [
        "id", "thread", "status", "error_code", "total_tokens", "usage_estimated",
        "created_at", "started_at", "finished_at", "duration",
    ]  # fmt: skip
    list_filter = ["status", "thread__assistant"]
    list_select_related = ["thread"]
    search_fields = ["remote_id", "error_code", "error_message", "thread__owner__username"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Run._meta.fields] + ["duration"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(UsageLimit)
class UsageLimitAdmin(admin.ModelAdmin):
    """Per-user fair-use limits; users without a row get the site defaults (README)."""

    list_display = [
        "user", "messages_per_minute", "concurrent_runs", "daily_token_budget",
        "tokens_used_today",
    ]  # fmt: skip
    search_fields = ["user__username"]
    autocomplete_fields = ["user"]
    readonly_fields = ["tokens_used_today"]

    @admin.display(description="Tokens used today (UTC)")
    def tokens_used_today(self, obj):
        return limits.tokens_used_today(obj.user) if obj.pk else "-"


@admin.register(UsageReport)
class UsageAdmin(admin.ModelAdmin):
    """The usage report in place of a change list: per user and per assistant over a period."""

    rows_per_page = 50

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        form = usage.PeriodForm(request.GET)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta}
        context.update(title="Usage", form=form, presets=usage.presets(timezone.localdate()))
        if form.is_valid():
            since, until = form.cleaned_data["since"], form.cleaned_data["until"]
            runs = usage.runs_between(since, until)
            context.update(
                # Shows the period in effect, defaults included.
                form=usage.PeriodForm({"since": since.isoformat(), "until": until.isoformat()}),
                since=since,
                until=until,
                totals=usage.totals(runs),
                users=self._page(request, usage.per_user(runs), "user_page"),
                assistants=self._page(request, usage.per_assistant(runs), "assistant_page"),
            )
        return TemplateResponse(request, "admin/assistants_app/usage_report.html", context)

    def _page(self, request, rows, parameter: str):
        """One page of rows, with links to its neighbours that keep the other parameters."""
        page = Paginator(rows, self.rows_per_page).get_page(request.GET.get(parameter))
        query = request.GET.copy()
        if page.has_previous():
            query[parameter] = page.previous_page_number()
            page.previous_url = "?" + query.urlencode()
        if page.has_next():
            query[parameter] = page.next_page_number()
            page.next_url = "?" + query.urlencode()
        return page
