"""Staff manage assistants in admin; threads and runs are read-only there."""

import pytest
from django.urls import reverse

from assistants_app.models import Assistant, Message, Run, RunStatus

pytestmark = pytest.mark.django_db


def test_it_is_for_staff_only(alice_client):
    response = alice_client.get(reverse("admin:assistants_app_assistant_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_it_lists_and_searches_assistants(staff_client, assistant):
    Assistant.objects.create(name="Translator", model="m", provider="test")
    url = reverse("admin:assistants_app_assistant_changelist")
    response = staff_client.get(url, {"q": "Translator"})
    assert [a.name for a in response.context["cl"].result_list] == ["Translator"]


def test_it_creates_an_assistant(staff_client):
    response = staff_client.post(
        reverse("admin:assistants_app_assistant_add"),
        {
            "name": "Poet",
            "description": "Writes verse",
            "instructions": "Answer in rhyme.",
            "is_active": "on",
            "engine": "responses",
            "provider": "test",
            "model": "gpt-test",
            "temperature": "0.7",
            "tools": [],  # no function tools ticked
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    poet = Assistant.objects.get(name="Poet")
    assert (poet.instructions, poet.temperature) == ("Answer in rhyme.", 0.7)


def test_it_refuses_an_unknown_provider(staff_client):
    response = staff_client.post(
        reverse("admin:assistants_app_assistant_add"),
        {"name": "X", "engine": "responses", "provider": "nowhere", "model": "m"},
    )
    assert response.status_code == 200
    assert "Unknown provider" in str(response.context["adminform"].form.errors)
    assert not Assistant.objects.exists()


def test_it_deactivates_selected_assistants(staff_client, assistant):
    staff_client.post(
        reverse("admin:assistants_app_assistant_changelist"),
        {"action": "deactivate", "_selected_action": [assistant.pk]},
    )
    assistant.refresh_from_db()
    assert assistant.is_active is False


def test_it_shows_a_thread_with_its_messages_and_runs_read_only(staff_client, alice_thread):
    Message.objects.create(thread=alice_thread, role="user", text="Visible to staff")
    Run.objects.create(thread=alice_thread, status=RunStatus.FAILED, error_code="server_error")
    response = staff_client.get(
        reverse("admin:assistants_app_thread_change", args=[alice_thread.pk])
    )
    assert b"Visible to staff" in response.content
    assert b"server_error" in response.content
    assert b'name="messages-0-text"' not in response.content  # shown, not editable


def test_it_filters_runs_by_status_and_shows_errors(staff_client, alice_thread):
    Run.objects.create(thread=alice_thread, status=RunStatus.COMPLETED)
    failed = Run.objects.create(
        thread=alice_thread, status=RunStatus.FAILED, error_code="rate_limited"
    )
    url = reverse("admin:assistants_app_run_changelist")
    response = staff_client.get(url, {"status__exact": "failed"})
    assert list(response.context["cl"].result_list) == [failed]
    assert b"rate_limited" in response.content
