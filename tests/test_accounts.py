"""Accounts: login throttling against password guessing, sign-up off unless enabled, no
password reset, admin for staff only, and assistants shared by group."""

import re
from urllib.parse import unquote

import pytest
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_login_failed
from django.contrib.auth.views import PasswordResetView
from django.test import Client
from django.urls import get_resolver

from assistants_app.models import Assistant, Thread

from .test_isolation import walk


def log_in(username: str, password: str, address: str = "10.0.0.1", client=None):
    client = client or Client()
    response = client.post(
        "/login/", {"username": username, "password": password}, REMOTE_ADDR=address
    )
    return response, client


def alert(response) -> str:
    return re.search(r'role="alert">([^<]*)<', response.content.decode()).group(1)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


# --- Login throttling -----------------------------------------------------------------


@pytest.fixture
def three_failures(settings):
    settings.LOGIN_FAILURES_LIMIT = 3


def test_it_lets_people_log_in(alice):
    response, client = log_in("alice", "alice-password")
    assert response.status_code == 302 and logged_in(client)


def test_it_locks_out_a_guesser_even_with_the_right_password(alice, three_failures):
    for _ in range(3):
        response, _ = log_in("alice", "guess")
        assert response.status_code == 200
        assert "didn't match" in response.content.decode()

    response, client = log_in("alice", "alice-password")

    assert response.status_code == 429
    assert "Too many failed logins. Try again in" in response.content.decode()
    assert not logged_in(client)


def test_a_locked_out_guess_is_not_checked(alice, three_failures):
    for _ in range(3):
        log_in("alice", "guess")
    checked = []

    def record(**kwargs):
        checked.append(kwargs)

    user_login_failed.connect(record)
    try:
        wrong, _ = log_in("alice", "guess")
        right, _ = log_in("alice", "alice-password")
    finally:
        user_login_failed.disconnect(record)
    assert checked == []
    assert wrong.status_code == right.status_code == 429
    assert alert(wrong) == alert(right)


def test_the_lockout_is_per_address_so_the_owner_elsewhere_can_log_in(alice, three_failures):
    for _ in range(3):
        log_in("alice", "guess", address="10.0.0.66")
    response, client = log_in("alice", "alice-password", address="10.0.0.1")
    assert response.status_code == 302 and logged_in(client)


def test_the_lockout_is_per_username_so_others_at_the_address_can_log_in(
    alice, bob, three_failures
):
    for _ in range(3):
        log_in("alice", "guess")
    response, client = log_in("bob", "bob-password")
    assert response.status_code == 302 and logged_in(client)


def test_one_address_spraying_many_usernames_is_locked_out(bob, three_failures):
    for number in range(30):  # 10 times the per-account limit, spread over usernames
        log_in(f"user{number}", "guess", address="10.0.0.66")
    response, client = log_in("bob", "bob-password", address="10.0.0.66")
    assert response.status_code == 429 and not logged_in(client)


def test_admin_has_no_login_form_of_its_own(django_user_model):
    django_user_model.objects.create_superuser("carol", password="carol-password")
    client = Client()
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "carol", "password": "carol-password"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/admin/"
    assert not logged_in(client)


# --- Sign-up and password reset -------------------------------------------------------

NEW_ACCOUNT = {"username": "dave", "password1": "a-long-pass-phrase", "password2": ""}
NEW_ACCOUNT["password2"] = NEW_ACCOUNT["password1"]


def test_sign_up_is_off_by_default(django_user_model):
    client = Client()
    assert client.get("/signup/").status_code == 404
    assert client.post("/signup/", NEW_ACCOUNT).status_code == 404
    assert not django_user_model.objects.filter(username="dave").exists()
    assert "Sign up" not in client.get("/login/").content.decode()


@pytest.fixture
def signup_on(settings):
    settings.SIGNUP_ENABLED = True


def test_sign_up_when_enabled_makes_a_plain_user_and_logs_them_in(signup_on, django_user_model):
    client = Client()
    assert "Sign up" in client.get("/login/").content.decode()

    response = client.post("/signup/", NEW_ACCOUNT)

    assert response.status_code == 302 and response["Location"] == "/"
    dave = django_user_model.objects.get(username="dave")
    assert not dave.is_staff and not dave.is_superuser and not dave.groups.exists()
    assert logged_in(client)


def test_sign_up_refuses_weak_passwords_and_taken_names(signup_on, alice, django_user_model):
    weak = {"username": "erin", "password1": "password", "password2": "password"}
    taken = {**NEW_ACCOUNT, "username": "alice"}
    for form in (weak, taken):
        response = Client().post("/signup/", form)
        assert response.status_code == 200
    assert django_user_model.objects.count() == 1  # alice alone


def test_sign_up_is_throttled_per_address(signup_on, django_user_model):
    for number in range(5):
        account = {**NEW_ACCOUNT, "username": f"farm{number}"}
        assert Client().post("/signup/", account, REMOTE_ADDR="10.0.0.9").status_code == 302
    response = Client().post(
        "/signup/", {**NEW_ACCOUNT, "username": "farm5"}, REMOTE_ADDR="10.0.0.9"
    )
    assert response.status_code == 429
    assert not django_user_model.objects.filter(username="farm5").exists()


def test_there_is_no_password_reset():
    views = {
        getattr(pattern.callback, "view_class", None)
        for _, pattern in walk(get_resolver("chatsite.urls").url_patterns)
    }
    assert not any(view and issubclass(view, PasswordResetView) for view in views)
    assert Client().get("/password_reset/").status_code == 404


# --- Admin is for staff ---------------------------------------------------------------


def test_admin_sends_anonymous_visitors_to_the_site_login():
    response = Client().get("/admin/", follow=True)
    assert unquote(response.redirect_chain[-1][0]) == "/login/?next=/admin/"


def test_admin_refuses_users_who_are_not_staff(bob_client):
    for url in ("/admin/", "/admin/assistants_app/assistant/", "/admin/auth/user/"):
        response = bob_client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/"), url


def test_admin_opens_for_staff(django_user_model):
    staff = django_user_model.objects.create_superuser("carol", password="carol-password")
    client = Client()
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/assistants_app/assistant/").status_code == 200


# --- Who may use which assistant --------------------------------------------------------


@pytest.fixture
def beta_assistant(alice):
    """An assistant shared with the "beta" group, which alice is in and bob is not."""
    beta = Group.objects.create(name="beta")
    alice.groups.add(beta)
    assistant = Assistant.objects.create(name="Beta", model="gpt-test", provider="test")
    assistant.groups.add(beta)
    return assistant


def test_only_the_group_sees_and_starts_threads_with_its_assistant(
    alice_client, bob_client, bob, beta_assistant
):
    assert "Beta" in alice_client.get("/").content.decode()
    assert "Beta" not in bob_client.get("/").content.decode()

    assert bob_client.post("/threads/new/", {"assistant": beta_assistant.pk}).status_code == 404
    assert not Thread.objects.filter(owner=bob).exists()
    assert alice_client.post("/threads/new/", {"assistant": beta_assistant.pk}).status_code == 302


@pytest.mark.parametrize("change", ["leave_group", "retire"])
def test_a_thread_stops_taking_messages_when_its_assistant_is_withdrawn(
    alice_client, alice, beta_assistant, change
):
    thread = Thread.objects.create(owner=alice, assistant=beta_assistant)
    if change == "leave_group":
        alice.groups.clear()
    else:
        Assistant.objects.filter(pk=beta_assistant.pk).update(is_active=False)

    response = alice_client.post(
        f"/threads/{thread.pk}/messages/", {"text": "still there?"}, content_type="application/json"
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "ASSISTANT_UNAVAILABLE"
    assert not thread.messages.exists()
