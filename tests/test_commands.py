"""Management commands a newcomer meets first."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from assistants_app.models import Assistant

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_a_login_and_an_assistant_on_an_empty_database(monkeypatch, settings):
    monkeypatch.setenv("DEMO_PASSWORD", "correct-horse-battery")
    settings.DEFAULT_PROVIDER = "simulator"
    out = StringIO()

    call_command("seed_demo", stdout=out)

    demo = get_user_model().objects.get(username="demo")
    assert demo.check_password("correct-horse-battery")
    assert "correct-horse-battery" in out.getvalue()
    assistant = Assistant.objects.get()
    assert (assistant.provider, assistant.engine, assistant.is_active) == (
        "simulator",
        "responses",
        True,
    )
    assert "simulator" in out.getvalue()


def test_seed_demo_leaves_a_used_database_alone(alice):
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert not get_user_model().objects.filter(username="demo").exists()
    assert not Assistant.objects.exists()
    assert out.getvalue() == ""
