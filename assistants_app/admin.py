"""Staff manage assistants here; threads and runs are shown read-only for support."""

import asyncio
import logging

from asgiref.sync import async_to_sync
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from . import (
    admin_costs,  # noqa: F401 - registers the prices' and group budgets' pages
    assistant_versions,
    audit,
    costs,  # noqa: F401
    knowledge_admin,  # noqa: F401 - registers the knowledge documents' admin
    limits,
    protocols,
    tools,
    usage,
)
from .admin_readonly import ReadOnlyAdmin
from .admin_tools import AssistantToolInline
from .admin_versions import versions_link
from .assistants_sync import has_remote_assistant, sync_assistant
from .engines import capabilities
from .engines.client import list_models
from .exceptions import ProviderError
from .models import (
    MAX_STARTERS,
    STARTER_MAX_CHARS,
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
MODELS_CACHE_SECONDS = 60  # the model field's suggestions are asked for at most this often

# The site's name on every admin page, not Django's.
admin.site.site_header = "Assistants · administration"
admin.site.site_title = "Assistants admin"
admin.site.index_title = "Assistants, chats and usage"


class ModelInput(forms.TextInput):
    """A text field that suggests the models the providers offer (a <datalist>): free text
    still goes, for a model a provider does not list."""

    def __init__(self, suggestions: list[tuple[str, str]]):
        super().__init__(attrs={"list": "model-suggestions", "autocomplete": "off"})
        self.suggestions = suggestions

    def render(self, name, value, attrs=None, renderer=None):
        field = super().render(name, value, attrs, renderer)
        options = format_html_join("", '<option value="{}" label="{}"></option>', self.suggestions)
        return format_html('{}<datalist id="model-suggestions">{}</datalist>', field, options)


def provider_models() -> list[tuple[str, str]]:
    """(model id, provider name) for every model the configured providers list right now;
    remembered for a minute, so the form does not ask on every load."""
    suggestions = cache.get("admin:provider-models")
    if suggestions is None:
        checked = async_to_sync(check_providers)(settings.ASSISTANT_PROVIDERS)
        suggestions = [
            (model, provider["name"])
            for provider in checked
            if provider["answers"]
            for model in provider["models"]
        ]
        cache.set("admin:provider-models", suggestions, MODELS_CACHE_SECONDS)
    return suggestions


class StartersField(forms.CharField):
    """Conversation starters, one a line in a text box; stored as a list."""

    widget = forms.Textarea(attrs={"rows": 4})

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        return [line.strip() for line in (value or "").splitlines() if line.strip()]

    def validate(self, value):
        if len(value) > MAX_STARTERS:
            raise forms.ValidationError(f"At most {MAX_STARTERS} starters.")
        for starter in value:
            if len(starter) > STARTER_MAX_CHARS:
                raise forms.ValidationError(
                    f"Keep each starter to {STARTER_MAX_CHARS} characters: “{starter[:40]}…”."
                )


class AssistantForm(forms.ModelForm):
    conversation_starters = StartersField(
        required=False,
        help_text=f"Up to {MAX_STARTERS} short prompts, one a line, shown as cards when "
        "someone starts a chat with this assistant.",
    )
    tools = forms.MultipleChoiceField(
        choices=tools.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Built-in functions it may call, running freely. The list of tools below "
        "(built-in and MCP servers') also says which ask the user first.",
    )

    def clean_engine(self):
        """Runs in progress belong to the protocol they started on: the engine changes once
        they end (threads then go on with their history on the new one, branches.py)."""
        engine = self.cleaned_data["engine"]
        if self.instance.pk and engine != self.instance.engine:
            if busy := protocols.answers_in_progress(self.instance):
                raise forms.ValidationError(
                    f"{busy} answer(s) of this assistant are being written. Change the engine "
                    "when they end."
                )
        return engine

    class Meta:
        model = Assistant
        fields = ["tools", "conversation_starters"]
        # Plain checkboxes: admin's two-pane filter widget has ARIA faults (axe, serious).
        widgets = {"groups": forms.CheckboxSelectMultiple}  # the admin adds the others (fieldsets)


@admin.register(Assistant)
class AssistantAdmin(admin.ModelAdmin):
    form = AssistantForm
    inlines = [AssistantToolInline]
    list_display = ["name", "model", "engine", "provider", "is_active", "updated_at"]
    list_filter = ["is_active", "engine", "provider"]
    search_fields = ["name", "description", "instructions", "model"]
    readonly_fields = [
        "remote_id", "vector_store_id", "created_at", "updated_at", "version_history",
    ]  # fmt: skip
    actions = ["deactivate", "activate", "sync_with_provider", "move_to_responses"]
    fieldsets = [
        (None, {"fields": ["name", "description", "instructions", "is_active"]}),
        ("Starting a chat", {"fields": ["conversation_starters"]}),
        (
            "Model",
            {
                "fields": [
                    "engine", "provider", "model", "context_tokens", "temperature", "tools",
                    "accepts_images",
                ]
            },
        ),
        ("Access", {"fields": ["groups"]}),
        (
            "Provider state",
            {"fields": ["remote_id", "vector_store_id", "created_at", "updated_at"]},
        ),
        ("Versions", {"fields": ["version_history"]}),
    ]

    @admin.display(description="Versions")
    def version_history(self, obj):
        return versions_link(obj)

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
        model = form.base_fields["model"]
        model.widget = ModelInput(provider_models())
        model.help_text = (
            "Suggestions come from the providers' model lists; any name goes. "
            "Blank: the provider's default model (README, Providers)."
        )
        if obj is None:
            provider.initial = settings.DEFAULT_PROVIDER
            # The model field's default is an OpenAI model: no use on other providers.
            default = settings.ASSISTANT_PROVIDERS.get(settings.DEFAULT_PROVIDER, {})
            if settings.DEFAULT_PROVIDER != "openai":
                model.initial = default.get("default_model", "")
        return form

    def save_model(self, request, obj, form, change):
        # A changed assistant is kept as a version (assistant_versions.py).
        with assistant_versions.changes_by(request.user):
            super().save_model(request, obj, form, change)
        self._sync(request, obj)
        if missing := knowledge_admin.sync_documents(obj):
            messages.warning(
                request,
                f"{missing} of “{obj}”'s knowledge documents could not be added to its "
                "provider's vector store; saving it again tries again.",
            )

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

    # Actions change assistants: staff who may only view them do not get them.
    @admin.action(
        description="Sync selected assistants with their provider", permissions=["change"]
    )
    def sync_with_provider(self, request, queryset):
        syncable = [a for a in queryset if has_remote_assistant(a)]
        synced = sum(1 for assistant in syncable if self._sync(request, assistant))
        self.message_user(request, f"Synced {synced} assistant(s) with their provider.")
        if skipped := queryset.count() - len(syncable):
            self.message_user(
                request, f"Skipped {skipped}: their engine keeps no assistant on the provider."
            )

    @admin.action(
        description="Move to the Responses API (threads keep their history)",
        permissions=["change"],
    )
    def move_to_responses(self, request, queryset):
        move = protocols.move_to_responses(queryset)
        self.message_user(
            request,
            f"Moved {len(move.moved)} assistant(s) to the Responses API. Each thread goes on "
            "with its whole history: its next message seeds a new conversation.",
        )
        if move.busy:
            names = ", ".join(f"“{a}”" for a in move.busy)
            self.message_user(
                request,
                f"Not moved, answers in progress: {names}. Move them when they end.",
                level=messages.WARNING,
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

    @admin.action(description="Deactivate selected assistants", permissions=["change"])
    def deactivate(self, request, queryset):
        changed = audit.update_each(queryset, is_active=False)  # each change in the audit log
        self.message_user(request, f"Deactivated {changed} assistant(s).")

    @admin.action(description="Activate selected assistants", permissions=["change"])
    def activate(self, request, queryset):
        changed = audit.update_each(queryset, is_active=True)
        self.message_user(request, f"Activated {changed} assistant(s).")


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
        "id", "thread", "status", "error_code", "tokens", "usage_estimated",
        "created_at", "started_at", "finished_at", "duration",
    ]  # fmt: skip
    list_filter = ["status", "thread__assistant"]
    ordering = ["-created_at", "-id"]  # newest first
    list_select_related = ["thread"]
    search_fields = ["remote_id", "error_code", "error_message", "thread__owner__username"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Run._meta.fields] + ["duration"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Total tokens", ordering="total_tokens")
    def tokens(self, obj):
        return "-" if obj.total_tokens is None else f"{obj.total_tokens:,}"


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
        return f"{limits.tokens_used_today(obj.user):,}" if obj.pk else "-"


@admin.register(UsageReport)
class UsageAdmin(ReadOnlyAdmin):
    """The usage report in place of a change list: per user and per assistant over a period."""

    rows_per_page = 50


    def changelist_view(self, request, extra_context=None):
        # This page replaces admin's own change list, and with it the permission check that
        # came with it: every user's usage is for staff allowed to view the usage report.
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = usage.PeriodForm(request.GET)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta}
        context.update(title="Usage", form=form, presets=usage.presets(timezone.localdate()))
        if form.is_valid():
            since, until = form.cleaned_data["since"], form.cleaned_data["until"]
            runs = usage.runs_between(since, until)
            tables = {
                "user": usage.per_user(runs),
                "group": usage.per_group(runs),
                "assistant": usage.per_assistant(runs),
                "day": usage.per_day(runs),
            }
            if request.GET.get("format") == "csv":
                return self._csv(tables, since, until)
            period = {"since": since.isoformat(), "until": until.isoformat()}
            context.update(
                # Shows the period in effect, defaults included.
                form=usage.PeriodForm(period),
                since=since,
                until=until,
                totals=usage.totals(runs),
                currency=settings.COST_CURRENCY,
                unpriced=costs.unpriced_models(runs),
                csv_query=f"since={period['since']}&until={period['until']}&format=csv",
                **{
                    f"{kind}s": self._page(request, rows, f"{kind}_page")
                    for kind, rows in tables.items()
                },
            )
        return TemplateResponse(request, "admin/assistants_app/usage_report.html", context)

    def _csv(self, tables: dict, since, until) -> HttpResponse:
        response = HttpResponse(
            costs.report_csv(tables.items()), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="usage-{since}-{until}.csv"'
        return response

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


# The audit log's and feedback's admin pages, in modules of their own.
from . import admin_audit, admin_feedback  # noqa: E402, F401
