"""The audit log: staff changes to accounts and assistants, through admin or anywhere else,
are written down (who, when, where from, old and new values) and can't be changed."""

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.test import Client

from assistants_app.models import AuditEntry, EngineKind, UsageLimit

from .conftest import make_assistant

ADMIN = "/admin/assistants_app/"


def user_form(user, **changes) -> dict:
    data = {
        "username": user.username, "first_name": user.first_name, "last_name": user.last_name,
        "email": user.email, "is_active": "on", "groups": [],
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
    }  # fmt: skip
    return {**data, **changes}


def assistant_form(**changes) -> dict:
    data = {
        "name": "Helper", "description": "", "instructions": "Answer briefly.",
        "is_active": "on", "engine": EngineKind.RESPONSES, "provider": "test",
        "model": "gpt-test", "temperature": "",
    }  # fmt: skip
    return {**data, **changes}


def entries(target_type: str, action: str | None = None):
    found = AuditEntry.objects.filter(target_type=target_type)
    return found.filter(action=action) if action else found


def test_a_staff_change_to_an_account_in_admin_is_logged_with_old_and_new(staff_client, alice):
    physics = Group.objects.create(name="physics")
    response = staff_client.post(
        f"/admin/auth/user/{alice.pk}/change/",
        user_form(alice, is_staff="on", email="alice@example.org", groups=[physics.pk]),
    )
    assert response.status_code == 302
    logged = entries("user", "changed").filter(target_id=str(alice.pk))
    fields = [entry.changes for entry in logged]
    made_staff = {
        "is_staff": {"from": False, "to": True},
        "email": {"from": "", "to": "alice@example.org"},
    }
    assert made_staff in fields
    assert {"groups": {"added": ["physics"]}} in fields
    assert {(entry.actor_name, entry.via) for entry in logged} == {("carol", "admin")}


def test_a_password_change_is_logged_without_the_password(staff_client, alice):
    staff_client.post(
        f"/admin/auth/user/{alice.pk}/password/",
        {"password1": "a-new-Password-9", "password2": "a-new-Password-9"},
    )
    entry = entries("user", "changed").get(target_id=str(alice.pk))
    assert entry.changes == {"password": "changed"}


def test_adding_and_deleting_an_account_are_logged(staff_client, django_user_model):
    staff_client.post(
        "/admin/auth/user/add/",
        {
            "username": "dave",
            "password1": "dave-Password-77",
            "password2": "dave-Password-77",
            "usable_password": "true",
        },  # fmt: skip
    )
    dave = django_user_model.objects.get(username="dave")
    created = entries("user", "created").get(target_id=str(dave.pk))
    assert created.changes["username"] == "dave" and created.changes["password"] == "(set)"
    staff_client.post(f"/admin/auth/user/{dave.pk}/delete/", {"post": "yes"})
    deleted = entries("user", "deleted").get(target_id=str(dave.pk))
    assert (deleted.target_name, deleted.actor_name) == ("dave", "carol")


def test_an_assistants_changes_in_admin_are_logged(staff_client):
    staff_client.post(f"{ADMIN}assistant/add/", assistant_form())
    created = entries("assistant", "created").get()
    assert created.changes["instructions"] == "Answer briefly."
    staff_client.post(
        f"{ADMIN}assistant/{created.target_id}/change/",
        assistant_form(instructions="Be terse.", model="gpt-other"),
    )
    changed = entries("assistant", "changed").get()
    assert changed.changes == {
        "instructions": {"from": "Answer briefly.", "to": "Be terse."},
        "model": {"from": "gpt-test", "to": "gpt-other"},
    }
    assert changed.actor_name == "carol"


def test_a_users_limits_are_logged_against_the_user(staff_client, alice):
    staff_client.post(
        f"{ADMIN}usagelimit/add/",
        {
            "user": alice.pk,
            "messages_per_minute": "2",
            "concurrent_runs": "",
            "daily_token_budget": "",
        },  # fmt: skip
    )
    assert UsageLimit.objects.filter(user=alice).exists()
    entry = entries("user limits", "created").get()
    assert (entry.target_id, entry.changes["messages_per_minute"]) == (str(alice.pk), 2)


def test_membership_changed_from_the_groups_side_is_logged_per_person(alice, bob):
    physics = Group.objects.create(name="physics")
    physics.user_set.add(alice, bob)
    logged = entries("user", "changed")
    assert sorted(entry.target_name for entry in logged) == ["alice", "bob"]
    assert {str(entry.changes) for entry in logged} == {"{'groups': {'added': ['physics']}}"}
    # Outside a request (a command, a shell): the system did it.
    assert {(entry.actor_name, entry.via) for entry in logged} == {("", "system")}


def test_an_assistant_opened_to_a_group_is_logged(db):
    assistant = make_assistant()
    assistant.groups.add(Group.objects.create(name="physics"))
    assistant.groups.clear()
    changes = [entry.changes for entry in entries("assistant", "changed").order_by("id")]
    assert changes == [{"groups": {"added": ["physics"]}}, {"groups": {"removed": ["physics"]}}]


def test_logging_in_is_not_a_change(alice):
    Client().post("/login/", {"username": "alice", "password": "alice-password"})
    assert not entries("user").exclude(action="created").exists()


def test_audit_entries_cannot_be_changed_or_deleted(alice):
    alice.first_name = "Alice"
    alice.save()
    entry = entries("user", "changed").get()
    entry.actor_name = "someone else"
    with pytest.raises(ValidationError):
        entry.save()
    with pytest.raises(ValidationError):
        entry.delete()


def test_admin_shows_the_log_read_only_even_to_a_superuser(staff_client, alice):
    alice.email = "alice@example.org"
    alice.save()
    entry = entries("user", "changed").get()
    listing = staff_client.get(f"{ADMIN}auditentry/")
    assert listing.status_code == 200 and "alice" in listing.content.decode()
    page = staff_client.get(f"{ADMIN}auditentry/{entry.pk}/change/")
    assert page.status_code == 200 and "alice@example.org" in page.content.decode()
    assert staff_client.post(f"{ADMIN}auditentry/{entry.pk}/change/", {}).status_code == 403
    deleting = staff_client.post(f"{ADMIN}auditentry/{entry.pk}/delete/", {"post": "yes"})
    assert deleting.status_code == 403
    assert staff_client.get(f"{ADMIN}auditentry/add/").status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_deactivating_assistants_by_admin_action_is_logged_per_assistant(staff_client):
    helper, other = make_assistant(), make_assistant(name="Other", is_active=False)
    response = staff_client.post(
        f"{ADMIN}assistant/",
        {"action": "deactivate", "_selected_action": [helper.pk, other.pk]},
        follow=True,
    )
    assert "Deactivated 1 assistant(s)." in response.content.decode()
    entry = entries("assistant", "changed").get()
    assert (entry.target_name, entry.actor_name, entry.via) == ("Helper", "carol", "admin")
    assert entry.changes == {"is_active": {"from": True, "to": False}}


def test_renaming_a_group_in_admin_is_logged(staff_client):
    physics = Group.objects.create(name="physics")
    staff_client.post(f"/admin/auth/group/{physics.pk}/change/", {"name": "physics-101"})
    entry = entries("group", "changed").get()
    assert entry.changes == {"name": {"from": "physics", "to": "physics-101"}}
    assert entry.actor_name == "carol"


def test_a_superuser_deleting_their_own_account_is_logged_by_name(staff_client, django_user_model):
    carol = django_user_model.objects.get(username="carol")
    response = staff_client.post(f"/admin/auth/user/{carol.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    entry = entries("user", "deleted").get(target_id=str(carol.pk))
    assert (entry.actor, entry.actor_name) == (None, "carol")
