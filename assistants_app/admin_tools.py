"""Admin for tools: MCP servers (their status and the tools they list, checked on save and
on demand) and the allow-list of tools on each assistant's page."""

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.forms.formsets import INITIAL_FORM_COUNT, TOTAL_FORM_COUNT
from django.forms.models import BaseInlineFormSet
from django.utils import timezone
from django.utils.html import format_html_join

from . import mcp_client, tool_registry
from .tool_models import AssistantTool, McpServer

CHECK_SECONDS = 15.0


def check(server: McpServer) -> None:
    """List the server's tools now and keep what was found (status, message, tools)."""
    try:
        server.tools = async_to_sync(mcp_client.list_tools)(server, CHECK_SECONDS)
        server.status, server.status_message = "ok", f"{len(server.tools)} tools listed."
    except mcp_client.McpFailure as failure:
        server.status, server.status_message = "unreachable", str(failure)
    server.checked_at = timezone.now()
    McpServer.objects.filter(pk=server.pk).update(
        tools=server.tools, status=server.status,
        status_message=server.status_message, checked_at=server.checked_at,
    )  # fmt: skip


class McpServerForm(forms.ModelForm):
    url = forms.URLField(
        required=False,
        assume_scheme="https",
        help_text="For HTTP: the server's MCP endpoint, e.g. https://tools.example.com/mcp.",
    )

    class Meta:
        model = McpServer
        fields = ["name", "transport", "is_active", "url", "header_env", "command", "args"]
        widgets = {
            "header_env": forms.Textarea(attrs={"rows": 2}),
            "args": forms.Textarea(attrs={"rows": 2}),
        }


@admin.register(McpServer)
class McpServerAdmin(admin.ModelAdmin):
    form = McpServerForm
    list_display = ["name", "transport", "is_active", "status", "tool_count", "checked_at"]
    list_filter = ["is_active", "transport", "status"]
    readonly_fields = ["status", "status_message", "checked_at", "listed_tools"]
    actions = ["check_now"]
    fieldsets = [
        (None, {"fields": ["name", "transport", "is_active"]}),
        ("Streamable HTTP", {"fields": ["url", "header_env"]}),
        ("Local command (stdio)", {"fields": ["command", "args"]}),
        ("Status", {"fields": ["status", "status_message", "checked_at", "listed_tools"]}),
    ]

    @admin.display(description="tools")
    def tool_count(self, obj: McpServer) -> int:
        return len(obj.tools or [])

    @admin.display(description="tools it lists")
    def listed_tools(self, obj: McpServer):
        if not obj.tools:
            return "None yet: save, or use the action Check now."
        return format_html_join(
            "\n", "<p><code>{}</code>: {}</p>",
            ((f"{obj.name}{tool_registry.SEPARATOR}{t['name']}", t["description"])
             for t in obj.tools),
        )  # fmt: skip

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        check(obj)
        level = messages.SUCCESS if obj.status == "ok" else messages.WARNING
        self.message_user(request, f"{obj.name}: {obj.status_message}", level)

    @admin.action(description="Check now (list their tools)")
    def check_now(self, request, queryset):
        for server in queryset:
            check(server)
            level = messages.SUCCESS if server.status == "ok" else messages.WARNING
            self.message_user(request, f"{server.name}: {server.status_message}", level)


class AssistantToolForm(forms.ModelForm):
    tool = forms.ChoiceField(
        choices=tool_registry.choices,
        help_text="Built-in tools, and those the active MCP servers listed at their last check.",
        widget=forms.Select(attrs={"aria-label": "Tool"}),
    )

    class Meta:
        model = AssistantTool
        fields = ["tool", "approval"]
        # A table row has no visible label per field: its column heading is read out instead.
        widgets = {"approval": forms.Select(attrs={"aria-label": "Approval"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A tool its server no longer lists stays selectable, said so, until staff remove it.
        current = self.instance.tool if self.instance.pk else ""
        choices = list(self.fields["tool"].choices)
        if current and current not in dict(choices):
            choices.append((current, f"{current} (not available now)"))
            self.fields["tool"].choices = choices


class AllowListFormSet(BaseInlineFormSet):
    """A post without the allow-list's fields (a script, a form from before tools existed)
    leaves the allow-list as it is, instead of refusing the whole assistant."""

    def __init__(self, data=None, *args, **kwargs):
        super().__init__(data, *args, **kwargs)
        total = f"{self.prefix}-{TOTAL_FORM_COUNT}"
        if self.is_bound and total not in self.data:
            self.data = self.data.copy()
            self.data[total] = self.data[f"{self.prefix}-{INITIAL_FORM_COUNT}"] = "0"


class AssistantToolInline(admin.TabularInline):
    model = AssistantTool
    form = AssistantToolForm
    formset = AllowListFormSet
    extra = 1
    verbose_name = "allowed tool"
    verbose_name_plural = "Tools it may call (each runs freely, or asks the user first)"
