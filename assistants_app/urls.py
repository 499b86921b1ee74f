from django.urls import path

from . import views

urlpatterns = [
    path("", views.thread_list, name="thread-list"),
    path("threads/new/", views.thread_create, name="thread-create"),
    path("threads/page/", views.thread_page, name="thread-page"),
    path("threads/<int:pk>/", views.thread_detail, name="thread-detail"),
    path("threads/<int:pk>/messages/", views.message_create, name="message-create"),
    path("threads/<int:pk>/cancel/", views.run_cancel, name="run-cancel"),
    path("threads/<int:pk>/retry/", views.run_retry, name="run-retry"),
    path(
        "threads/<int:pk>/tool-calls/<int:step_id>/<str:decision>/",
        views.tool_call_decide,
        name="tool-call-decide",
    ),
    path("threads/<int:pk>/rename/", views.thread_rename, name="thread-rename"),
    path("threads/<int:pk>/delete/", views.thread_delete, name="thread-delete"),
    path("threads/<int:pk>/export.md", views.thread_export_markdown, name="thread-export-md"),
    path("threads/<int:pk>/export.json", views.thread_export_json, name="thread-export-json"),
]
