"""Create a demo user and a demo assistant when the database has no users yet."""

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from assistants_app.models import Assistant, AssistantTool, EngineKind

DEMO_USERNAME = "demo"


class Command(BaseCommand):
    help = "Create the demo user and assistant on an empty database and print the login."

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.exists():
            return
        password = os.environ.get("DEMO_PASSWORD") or secrets.token_urlsafe(9)
        User.objects.create_superuser(DEMO_USERNAME, password=password)
        simulated = settings.DEFAULT_PROVIDER == "simulator"
        assistant = Assistant.objects.create(
            name="Helpful assistant",
            description="Answers questions briefly.",
            instructions="You are a helpful assistant. Answer briefly and clearly.",
            model="simulator" if simulated else "gpt-4.1-mini",
            engine=EngineKind.RESPONSES,
            provider=settings.DEFAULT_PROVIDER,
        )
        # Tools to try: the clock runs freely, searching your messages asks first. With the
        # simulator, name one in a message ("current_datetime Europe/Paris").
        AssistantTool.objects.bulk_create([
            AssistantTool(assistant=assistant, tool="current_datetime"),
            AssistantTool(assistant=assistant, tool="search_my_messages",
                          approval=AssistantTool.Approval.ASK),
        ])  # fmt: skip
        self.stdout.write(
            self.style.SUCCESS(
                f"Created the demo login: username {DEMO_USERNAME!r}, password {password!r} "
                f"(staff; change it with `manage.py changepassword {DEMO_USERNAME}`)."
            )
        )
        if simulated:
            self.stdout.write("No OPENAI_API_KEY is set: replies come from the offline simulator.")
