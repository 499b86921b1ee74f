"""Admin for assistants' versions (assistant_versions.py): each version read-only, as a diff
against the one before, and a button that restores it. Imported by admin.py."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html

from . import assistant_versions
from .admin_readonly import ReadOnlyAdmin
from .assistants_sync import sync_assistant
from .exceptions import ProviderError
from .models import Assistant, AssistantVersion


@admin.register(AssistantVersion)
class AssistantVersionAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "created_at", "created_by", "what_changed", "restored"]
    list_filter = ["assistant"]
    list_select_related = ["assistant", "created_by"]
    search_fields = ["assistant__name"]
    ordering = ["assistant__name", "-number"]
    fields = ["assistant", "number", "created_at", "created_by", "restored", "diff"]
    readonly_fields = fields
    change_form_template = "admin/assistants_app/assistantversion/change_form.html"

    class Media:
        css = {"all": ["css/admin_versions.css"]}


    @admin.display(description="Changed")
    def what_changed(self, obj):
        return ", ".join(assistant_versions.LABELS.get(name, name) for name in obj.changed)

    @admin.display(description="Restored")
    def restored(self, obj):
        return f"from v{obj.restored_from}" if obj.restored_from else ""

    @admin.display(description="Changes from the version before")
    def diff(self, obj):
        return assistant_versions.diff_html(obj)

    def get_urls(self):
        restore = path(
            "<int:pk>/restore/",
            self.admin_site.admin_view(self.restore_view),
            name="assistants_app_assistantversion_restore",
        )
        return [restore, *super().get_urls()]

    def render_change_form(self, request, context, *args, **kwargs):
        assistants = self.admin_site._registry.get(Assistant)
        context["can_restore"] = bool(assistants and assistants.has_change_permission(request))
        return super().render_change_form(request, context, *args, **kwargs)

    def restore_view(self, request, pk: int):
        """POST: put the assistant back as this version had it (a new version records it)."""
        assistants = self.admin_site._registry[Assistant]
        if request.method != "POST" or not assistants.has_change_permission(request):
            raise PermissionDenied
        version = get_object_or_404(AssistantVersion.objects.select_related("assistant"), pk=pk)
        try:
            restored = assistant_versions.restore(version, request.user)
        except ValidationError as error:
            problems = " ".join(error.messages)
            self.message_user(
                request, f"Version {version.number} cannot be restored: {problems}", messages.ERROR
            )
            return redirect("admin:assistants_app_assistantversion_change", pk)
        if restored is None:
            self.message_user(request, f"“{version.assistant}” is already as in v{version.number}.")
        else:
            self.message_user(
                request,
                format_html(
                    "Restored “{}” to v{}, kept as v{}.",
                    version.assistant,
                    version.number,
                    restored.number,
                ),
            )
            _push(request, version.assistant, self)
        url = reverse("admin:assistants_app_assistantversion_changelist")
        return redirect(f"{url}?assistant__id__exact={version.assistant_id}")


def _push(request, assistant: Assistant, model_admin) -> None:
    """Tell the provider (Assistants API engine), as a save in admin does."""
    try:
        sync_assistant(assistant)
    except ProviderError as error:
        model_admin.message_user(
            request,
            f"“{assistant}” is restored here, but its provider refused the update: "
            f"{error.message} The next run sends these settings again.",
            messages.ERROR,
        )


def versions_link(assistant: Assistant) -> str:
    """For the assistant's page: how many versions it has, linked to their list."""
    if not assistant.pk:
        return "-"
    count = assistant.versions.count()
    url = reverse("admin:assistants_app_assistantversion_changelist")
    return format_html(
        '<a href="{}?assistant__id__exact={}">{} version{}</a>: see each change, restore one.',
        url,
        assistant.pk,
        count,
        "" if count == 1 else "s",
    )
