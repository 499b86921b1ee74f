"""Assistants' versions: every change of what an assistant answers with is kept (who, when,
what), shown in admin as a diff, restorable; each run records the version it was created with."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from assistants_app import assistant_versions
from assistants_app.models import Assistant, AssistantVersion, EngineKind, Run

from .conftest import make_assistant
from .test_fair_use import post, provider  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

CHANGE_URL = "/admin/assistants_app/assistant/{}/change/"


def form(assistant: Assistant, **changes) -> dict:
    data = {
        "name": assistant.name, "description": "", "instructions": assistant.instructions,
        "is_active": "on", "engine": assistant.engine, "provider": assistant.provider,
        "model": assistant.model, "temperature": "", "context_tokens": "",
        "conversation_starters": "",
    }  # fmt: skip
    return {**data, **changes}


def version_url(version: AssistantVersion, action: str = "change") -> str:
    return reverse(f"admin:assistants_app_assistantversion_{action}", args=[version.pk])


def test_a_new_assistant_is_version_one(assistant):
    (version,) = assistant.versions.all()
    assert version.number == 1 and version.created_by is None
    assert version.values["instructions"] == "Answer briefly."
    assert version.values["model"] == "gpt-test"
    assert set(version.changed) == set(assistant_versions.VERSIONED_FIELDS)


def test_a_change_in_admin_is_kept_with_who_and_what(staff_client, assistant):
    response = staff_client.post(
        CHANGE_URL.format(assistant.pk),
        form(assistant, instructions="Answer briefly.\nCite sources.", model="gpt-other"),
    )
    assert response.status_code == 302
    latest = assistant.versions.first()
    assert latest.number == 2
    assert latest.created_by.username == "carol"
    assert latest.changed == ["instructions", "model"]
    assert latest.values["model"] == "gpt-other"


def test_saves_that_change_no_versioned_field_make_no_version(staff_client, assistant):
    staff_client.post(CHANGE_URL.format(assistant.pk), form(assistant, name="Renamed"))
    assistant.refresh_from_db()
    assert assistant.name == "Renamed"
    assistant.remote_id = "asst_9"
    assistant.save(update_fields=["remote_id"])
    assistant.save()
    assert assistant.versions.count() == 1


def test_tools_and_temperature_are_versioned(assistant):
    assistant.tools = ["current_datetime"]
    assistant.temperature = 0.2
    assistant.save()
    latest = assistant.versions.first()
    assert latest.changed == ["temperature", "tools"]
    assert latest.values["tools"] == ["current_datetime"]


def test_each_run_records_the_version_it_was_created_with(
    alice, alice_client, alice_thread, provider  # noqa: F811
):
    assert post(alice_client, alice_thread, "first").status_code == 201
    assistant = alice_thread.assistant
    assistant.instructions = "Answer at length."
    assistant.save()
    Run.objects.update(status="completed")
    assert post(alice_client, alice_thread, "second").status_code == 201
    first, second = Run.objects.order_by("pk")
    assert first.assistant_version.number == 1
    assert second.assistant_version.number == 2
    assert second.assistant_version.values["instructions"] == "Answer at length."


def test_a_change_that_bypassed_save_is_recorded_when_a_run_uses_it(
    alice_client, alice_thread, provider  # noqa: F811
):
    Assistant.objects.filter(pk=alice_thread.assistant_id).update(instructions="Sneaky.")
    assert post(alice_client, alice_thread, "hi").status_code == 201
    run = Run.objects.get()
    assert run.assistant_version.number == 2
    assert run.assistant_version.values["instructions"] == "Sneaky."
    assert run.assistant_version.created_by is None


def test_admin_shows_a_version_as_a_diff_against_the_one_before(staff_client, assistant):
    assistant.instructions = "Answer briefly.\nBe kind.\nUse <b>bold</b>."
    assistant.model = "gpt-next"
    assistant.save()
    page = staff_client.get(version_url(assistant.versions.first())).content.decode()
    assert re.search(r'<span class="diff-new">\+Be kind\.</span>', page)
    assert '<span class="diff-new">+Use &lt;b&gt;bold&lt;/b&gt;.</span>' in page  # escaped
    assert '<del class="diff-old">gpt-test</del> → <ins class="diff-new">gpt-next</ins>' in page
    assert "Restore this version" in page
    listing = staff_client.get(reverse("admin:assistants_app_assistantversion_changelist"))
    assert "instructions, model" in listing.content.decode()


def test_staff_restore_an_old_version_which_is_kept_as_a_new_one(staff_client, assistant):
    first = assistant.versions.get()
    assistant.instructions = "Something worse."
    assistant.tools = ["current_datetime"]
    assistant.save()

    response = staff_client.post(version_url(first, "restore"))

    assert response.status_code == 302
    assistant.refresh_from_db()
    assert (assistant.instructions, assistant.tools) == ("Answer briefly.", [])
    latest = assistant.versions.first()
    assert (latest.number, latest.restored_from, latest.created_by.username) == (3, 1, "carol")
    assert latest.changed == ["instructions", "tools"]


def test_restoring_takes_permission_to_change_assistants(django_user_model, assistant):
    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_assistantversion", "view_assistant"])
    )
    client = Client()
    client.force_login(viewer)
    first = assistant.versions.get()
    assistant.instructions = "Changed."
    assistant.save()
    assert "Restore this version" not in client.get(version_url(first)).content.decode()
    assert client.post(version_url(first, "restore")).status_code == 403
    assistant.refresh_from_db()
    assert assistant.instructions == "Changed."
    assert client.get(version_url(first, "restore")).status_code == 403


def test_a_version_whose_provider_is_gone_is_not_restored(staff_client, assistant, settings):
    settings.ASSISTANT_PROVIDERS = {**settings.ASSISTANT_PROVIDERS, "old": {"label": "Old"}}
    old = make_assistant(name="Legacy", provider="old", engine=EngineKind.RESPONSES)
    first = old.versions.get()
    old.provider = "test"
    old.save()
    del settings.ASSISTANT_PROVIDERS["old"]
    response = staff_client.post(version_url(first, "restore"), follow=True)
    assert "cannot be restored" in response.content.decode()
    old.refresh_from_db()
    assert old.provider == "test" and old.versions.count() == 2


def test_versions_are_numbered_in_order(assistant):
    for number in range(5):
        assistant.instructions = f"Take {number}."
        assistant.save()
    numbers = list(assistant.versions.values_list("number", flat=True))
    assert numbers == [6, 5, 4, 3, 2, 1]


def test_the_migration_makes_every_existing_assistant_version_one(alice_thread, assistant):
    import importlib

    from django.apps import apps

    from assistants_app.models import UsageRecord

    UsageRecord.objects.create(user=alice_thread.owner, assistant=assistant)
    AssistantVersion.objects.all().delete()  # as before the migration
    migration = importlib.import_module("assistants_app.migrations.0012_sharing_versions_costs")

    migration.first_versions(apps, schema_editor=None)

    (version,) = assistant.versions.all()
    assert (version.number, version.values) == (1, assistant_versions.values_of(assistant))
    record = UsageRecord.objects.get()
    assert (record.provider, record.model) == ("test", "gpt-test")
