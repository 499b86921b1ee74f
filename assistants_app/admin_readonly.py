"""A base for admin pages that are read, never added to, changed or deleted from: the usage
report, the audit log, assistants' versions (their Restore makes a new version instead)."""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
