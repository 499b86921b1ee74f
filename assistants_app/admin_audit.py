"""The audit log in admin: read-only for everyone, superusers included (assistants_app/audit.py
writes it)."""

import json

from django.contrib import admin
from django.utils.html import format_html

from .admin_readonly import ReadOnlyAdmin
from .models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "who", "via", "action", "target_type", "target_name", "summary"]
    list_filter = ["action", "target_type", "via"]
    search_fields = ["actor_name", "target_name", "target_id"]
    date_hierarchy = "created_at"
    fields = ["created_at", "who", "via", "action", "target_type", "target_id", "target_name",
              "changes_shown"]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="who", ordering="actor_name")
    def who(self, entry: AuditEntry) -> str:
        return entry.actor_name or "system"

    @admin.display(description="what changed")
    def summary(self, entry: AuditEntry) -> str:
        return ", ".join(entry.changes)[:120]

    @admin.display(description="changes")
    def changes_shown(self, entry: AuditEntry) -> str:
        text = json.dumps(entry.changes, indent=2, ensure_ascii=False)
        return format_html("<pre>{}</pre>", text)

