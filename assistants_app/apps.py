from django.apps import AppConfig


class AssistantsAppConfig(AppConfig):
    name = "assistants_app"
    verbose_name = "Assistants"

    def ready(self) -> None:
        from . import versions  # noqa: F401 - connects the signal that records versions
