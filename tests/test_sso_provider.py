"""Single sign-on against a real OpenID provider (django-oauth-toolkit in a second process on
loopback, tests/oidc.py): the whole code flow with PKCE, group sync at each sign-in, a
tampered token and a token issued to another site."""

import base64
import json

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from assistants_app import services, sso
from assistants_app.models import Assistant, SsoIdentity

from .conftest import make_assistant
from .oidc import start_provider

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
CALLBACK = "http://testserver/oidc/callback/"
LOGIN_PAGE = "http://testserver/login/"


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    with start_provider(tmp_path_factory.mktemp("provider")) as provider:
        provider.set_client("chat-site", "site-secret", [CALLBACK], [LOGIN_PAGE])
        provider.set_client("other-site", "other-secret", [CALLBACK])
        provider.set_user("dana", "dana-password-1", ["physics"])
        yield provider


@pytest.fixture(autouse=True)
def sso_settings(settings, provider):
    settings.OIDC_ISSUER = provider.issuer
    settings.OIDC_RP_CLIENT_ID = "chat-site"
    settings.OIDC_RP_CLIENT_SECRET = "site-secret"
    sso.forget_provider()
    yield settings
    sso.forget_provider()


@pytest.fixture
def physics(db):
    assistant = make_assistant(name="Physics tutor")
    assistant.groups.set([Group.objects.get_or_create(name="physics")[0]])
    return assistant


def sign_in(provider, username="dana", password="dana-password-1", client=None, browser=None):
    """A person clicks "Sign in with …" on the site and signs in at the provider; the site's
    client (its cookies) and the response to the callback."""
    client = client or Client()
    browser = browser or provider.browser()
    start = client.get("/oidc/authenticate/")
    assert start.status_code == 302
    back = provider.sign_in(browser, start["Location"], username, password)
    assert back.startswith(CALLBACK)
    return client, client.get(back.removeprefix("http://testserver"))


def signed_in_user(client):
    return client.get("/").wsgi_request.user


def test_the_first_sign_in_makes_an_account_with_the_providers_groups(provider, physics):
    client, response = sign_in(provider)
    assert response.status_code == 302 and response["Location"] == "/"
    user = signed_in_user(client)
    assert user.username == "dana" and user.email == "dana@example.org"
    assert not user.has_usable_password()
    assert list(user.groups.values_list("name", flat=True)) == ["physics"]
    assert SsoIdentity.objects.get(user=user).issuer == provider.issuer
    assert client.session.get_expiry_age() == 86_400  # then groups are read anew
    assert "Physics tutor" in client.get("/").content.decode()


def test_groups_follow_the_provider_at_every_sign_in(provider, physics):
    client, _ = sign_in(provider)
    dana = signed_in_user(client)
    thread = services.start_thread(dana, physics.pk)

    provider.set_user("dana", "dana-password-1", ["chemistry", "staff-room"])
    client, _ = sign_in(provider)
    again = signed_in_user(client)
    assert again.pk == dana.pk  # the same account, found by subject
    assert sorted(again.groups.values_list("name", flat=True)) == ["chemistry", "staff-room"]
    # Out of the physics group, out of its assistant: not offered, and its thread refused.
    assert not Assistant.objects.available_to(again).filter(pk=physics.pk).exists()
    assert "Physics tutor" not in client.get("/").content.decode()
    response = client.post(
        f"/threads/{thread.pk}/messages/", data={"text": "Hello?"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert "no longer available" in response.json()["error"]["message"]
    provider.set_user("dana", "dana-password-1", ["physics"])


def test_two_people_with_the_same_name_get_two_accounts(provider, django_user_model):
    django_user_model.objects.create_user("erin", password="local-erin-password")
    provider.set_user("erin", "erin-password-1", [])
    client, _ = sign_in(provider, "erin", "erin-password-1")
    user = signed_in_user(client)
    # The local "erin" is someone else: never taken over by a provider's namesake.
    assert user.username == "erin-2"
    assert django_user_model.objects.filter(username__startswith="erin").count() == 2


def _tampered(id_token: str, **claims) -> str:
    header, payload, signature = id_token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data.update(claims)
    changed = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{header}.{changed}.{signature}"


def test_a_tampered_id_token_is_refused(provider, physics, monkeypatch, django_user_model):
    real_get_token = sso.SsoBackend.get_token

    def tampering(backend, payload):
        tokens = real_get_token(backend, payload)
        tokens["id_token"] = _tampered(tokens["id_token"], groups=["physics", "admins"])
        return tokens

    monkeypatch.setattr(sso.SsoBackend, "get_token", tampering)
    client, response = sign_in(provider)
    assert response["Location"] == "/login/?sso=failed"
    assert not signed_in_user(client).is_authenticated
    assert not django_user_model.objects.filter(username="dana").exists()
    page = client.get(response["Location"]).content.decode()
    assert "Signing in with single sign-on did not complete" in page


def test_an_id_token_issued_to_another_site_is_refused(provider, settings, monkeypatch):
    # A real token of the same provider, issued to another site (its audience)...
    captured = {}
    real_get_token = sso.SsoBackend.get_token

    def capturing(backend, payload):
        captured.update(real_get_token(backend, payload))
        return dict(captured)

    settings.OIDC_RP_CLIENT_ID, settings.OIDC_RP_CLIENT_SECRET = "other-site", "other-secret"
    monkeypatch.setattr(sso.SsoBackend, "get_token", capturing)
    client, response = sign_in(provider)
    assert signed_in_user(client).is_authenticated  # ...fine at the site it was issued to,
    other_nonce = json.loads(base64.urlsafe_b64decode(captured["id_token"].split(".")[1] + "=="))[
        "nonce"
    ]

    # ...replayed at ours, even with its nonce planted in the session, is refused.
    settings.OIDC_RP_CLIENT_ID, settings.OIDC_RP_CLIENT_SECRET = "chat-site", "site-secret"
    monkeypatch.setattr(sso.SsoBackend, "get_token", lambda backend, payload: dict(captured))
    client = Client()
    start = client.get("/oidc/authenticate/")
    session = client.session
    for state in session["oidc_states"].values():
        state["nonce"] = other_nonce
    session.save()
    back = provider.sign_in(provider.browser(), start["Location"], "dana", "dana-password-1")
    response = client.get(back.removeprefix("http://testserver"))
    assert response["Location"] == "/login/?sso=failed"
    assert not signed_in_user(client).is_authenticated


def test_a_callback_with_a_state_never_asked_for_is_refused(provider):
    client = Client()
    client.get("/oidc/authenticate/")
    response = client.get("/oidc/callback/?code=stolen&state=made-up")
    assert response["Location"] == "/login/?sso=failed"
    assert not signed_in_user(client).is_authenticated


def test_logging_out_ends_the_providers_session_too(provider, physics):
    browser = provider.browser()
    client, _ = sign_in(provider, browser=browser)
    assert provider.signed_in_as(browser) == "dana"
    response = client.post("/logout/")
    assert response.status_code == 302
    assert response["Location"].startswith(f"{provider.issuer}/logout/?id_token_hint=")
    assert not signed_in_user(client).is_authenticated
    at_provider = browser.get(response["Location"])
    assert at_provider.status_code == 302 and at_provider.headers["location"] == LOGIN_PAGE
    assert provider.signed_in_as(browser) is None


def test_a_password_account_logs_out_without_visiting_the_provider(alice_client):
    response = alice_client.post("/logout/")
    assert response["Location"] == "/login/"
