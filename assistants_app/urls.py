from django.urls import path

from . import file_views, share_views, version_views, views

urlpatterns = [
    path("", views.thread_list, name="thread-list"),
    path("threads/new/", views.thread_create, name="thread-create"),
    path("threads/page/", views.thread_page, name="thread-page"),
    path("threads/<int:pk>/", views.thread_detail, name="thread-detail"),
    path("threads/<int:pk>/messages/", views.message_create, name="message-create"),
    path("threads/<int:pk>/cancel/", views.run_cancel, name="run-cancel"),
    path("threads/<int:pk>/retry/", views.run_retry, name="run-retry"),
    path("threads/<int:pk>/messages/list/", version_views.message_list, name="message-list"),
    path(
        "threads/<int:pk>/messages/<int:message_id>/edit/",
        version_views.message_edit,
        name="message-edit",
    ),
    path(
        "threads/<int:pk>/messages/<int:message_id>/regenerate/",
        version_views.message_regenerate,
        name="message-regenerate",
    ),
    path(
        "threads/<int:pk>/messages/<int:message_id>/feedback/",
        version_views.message_feedback,
        name="message-feedback",
    ),
    path("threads/<int:pk>/version/", version_views.version_show, name="version-show"),
    path("threads/<int:pk>/assistant/", version_views.assistant_switch, name="assistant-switch"),
    path(
        "threads/<int:pk>/tool-calls/<int:step_id>/<str:decision>/",
        views.tool_call_decide,
        name="tool-call-decide",
    ),
    path("threads/<int:pk>/rename/", views.thread_rename, name="thread-rename"),
    path("threads/<int:pk>/delete/", views.thread_delete, name="thread-delete"),
    path("threads/<int:pk>/export.md", views.thread_export_markdown, name="thread-export-md"),
    path("threads/<int:pk>/export.json", views.thread_export_json, name="thread-export-json"),
    path("files/", file_views.attachment_upload, name="attachment-upload"),
    path("files/<int:pk>/", file_views.attachment, name="attachment"),
    path("files/<int:pk>/thumbnail/", file_views.attachment_thumbnail, name="attachment-thumbnail"),
    path("knowledge/<int:pk>/", file_views.knowledge_document, name="knowledge-document"),
    path("knowledge/files/<str:file_id>/", file_views.knowledge_file, name="knowledge-file"),
    path("threads/<int:pk>/share/", share_views.link_create, name="thread-share"),
    path("shared/", share_views.link_list, name="shared-links"),
    path("shared/<int:pk>/revoke/", share_views.link_revoke, name="shared-link-revoke"),
    path("s/<str:token>/", share_views.shared_thread, name="shared-thread"),
    path("s/<str:token>/continue/", share_views.shared_continue, name="shared-continue"),
]
