"""Feedback in admin: what users thought of answers, per assistant, filtered by assistant,
rating and date. The thread is linked only where its owner chose to share it."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from .models import Feedback


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ["created_at", "assistant", "rating", "comment_start", "user", "thread"]
    list_filter = ["assistant", "rating", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["assistant", "user", "message"]
    search_fields = ["comment", "assistant__name"]
    date_hierarchy = "created_at"
    fields = ["created_at", "assistant", "rating", "comment", "user", "answer", "thread"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="comment")
    def comment_start(self, obj: Feedback) -> str:
        return obj.comment if len(obj.comment) <= 80 else obj.comment[:79] + "…"

    @admin.display(description="answer")
    def answer(self, obj: Feedback) -> str:
        return obj.message.text if obj.share_thread else "(not shared)"

    @admin.display(description="thread")
    def thread(self, obj: Feedback) -> str:
        if not obj.share_thread:
            return "not shared"
        url = reverse("admin:assistants_app_thread_change", args=[obj.message.thread_id])
        return format_html('<a href="{}">Shared thread</a>', url)
