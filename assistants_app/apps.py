from django.apps import AppConfig


class AssistantsAppConfig(AppConfig):
    name = "assistants_app"
    verbose_name = "Assistants"

    def ready(self) -> None:
        from . import (
            assistant_versions,  # noqa: F401 - connects the signal that records versions
            audit,
            middleware,  # noqa: F401 - registers the check for the CSRF middleware
            signals,  # noqa: F401 - connects the receivers that delete files
        )

        audit.connect()
