"""Single sign-on without a provider: the login page's choices, password login turned off,
a provider that can't be reached, and claims of every shape. The flow against a real
provider is in test_sso_provider.py."""

import pytest
import requests
from django.contrib.auth.models import Group
from django.core.exceptions import SuspiciousOperation
from django.test import Client

from assistants_app import sso

ISSUER = "https://id.example.org/realms/staff"


@pytest.fixture
def sso_on(settings):
    settings.OIDC_ISSUER = ISSUER
    settings.OIDC_RP_CLIENT_ID = "chat-site"
    settings.OIDC_RP_CLIENT_SECRET = "secret"
    settings.OIDC_PROVIDER_NAME = "Example ID"
    sso.forget_provider()
    yield settings
    sso.forget_provider()


@pytest.fixture
def unreachable_provider(monkeypatch):
    def refuse(url, **kwargs):
        raise requests.ConnectionError(f"connection refused: {url}")

    monkeypatch.setattr(sso.requests, "get", refuse)


def test_the_login_page_offers_only_passwords_without_sso(db):
    page = Client().get("/login/").content.decode()
    assert 'name="password"' in page
    assert "Sign in with" not in page


def test_the_login_page_offers_the_provider_beside_passwords(db, sso_on):
    page = Client().get("/login/?next=/threads/3/").content.decode()
    assert 'href="/oidc/authenticate/?next=/threads/3/"' in page
    assert "Sign in with Example ID" in page
    assert 'name="password"' in page


def test_with_password_login_off_the_page_offers_only_the_provider(db, sso_on):
    sso_on.LOCAL_LOGIN_ENABLED = False
    page = Client().get("/login/").content.decode()
    assert "Sign in with Example ID" in page
    assert 'name="password"' not in page


def test_with_password_login_off_a_right_password_is_refused(alice, sso_on):
    sso_on.LOCAL_LOGIN_ENABLED = False
    client = Client()
    response = client.post("/login/", {"username": "alice", "password": "alice-password"})
    assert response.status_code == 403
    assert "Password login is off here: sign in with Example ID." in response.content.decode()
    assert not client.get("/").wsgi_request.user.is_authenticated


def test_with_password_login_off_nobody_signs_up(db, sso_on):
    sso_on.LOCAL_LOGIN_ENABLED = False
    sso_on.SIGNUP_ENABLED = True
    assert Client().get("/signup/").status_code == 404


def test_sso_addresses_are_not_found_when_sso_is_off(db):
    assert Client().get("/oidc/authenticate/").status_code == 404
    assert Client().get("/oidc/callback/?code=x&state=y").status_code == 404


def test_an_unreachable_provider_is_said_in_words(db, sso_on, unreachable_provider):
    client = Client()
    response = client.get("/oidc/authenticate/")
    assert response["Location"] == "/login/?sso=unavailable"
    page = client.get(response["Location"]).content.decode()
    assert "Example ID can&#x27;t be reached right now. Try again in a minute." in page


def test_a_discovery_document_of_another_issuer_is_refused(sso_on, monkeypatch):
    class Answer:
        def raise_for_status(self):
            pass

        def json(self):
            return {"issuer": "https://attacker.example.org", "authorization_endpoint": "x"}

    monkeypatch.setattr(sso.requests, "get", lambda url, **kwargs: Answer())
    with pytest.raises(sso.ProviderUnavailable):
        sso.provider_config()


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "https://other.example.org", "aud": "chat-site"},
        {"iss": ISSUER, "aud": "other-site"},
        {"iss": ISSUER, "aud": ["other-site", "chat-site"], "azp": "other-site"},
        {"iss": ISSUER},
    ],
)
def test_tokens_of_another_issuer_or_audience_are_refused(sso_on, claims):
    with pytest.raises(SuspiciousOperation):
        sso.check_audience_and_issuer(claims)


def test_a_token_for_us_passes(sso_on):
    sso.check_audience_and_issuer({"iss": ISSUER, "aud": ["chat-site", "api"], "azp": "chat-site"})


@pytest.mark.parametrize(
    "claim, groups",
    [
        (["physics", "chemistry"], ["chemistry", "physics"]),
        ("physics", ["physics"]),
        (None, []),
        ({"physics": True}, []),
        (["physics", 7, "", "x" * 151], ["physics"]),
    ],
)
def test_groups_are_set_from_a_claim_of_any_shape(alice, claim, groups):
    alice.groups.add(Group.objects.create(name="set-by-hand"))
    sso.sync_groups(alice, claim)
    assert sorted(alice.groups.values_list("name", flat=True)) == groups


def test_a_sign_in_keeps_names_within_what_django_accepts(sso_on, django_user_model):
    user = sso.sign_in({"sub": "42", "preferred_username": "Dana Scully <ds>", "groups": []})
    assert user.username == "Dana-Scully--ds-"
    assert sso.sign_in({"sub": "42", "groups": []}).pk == user.pk


def test_a_sign_in_that_races_another_for_a_username_tries_again(
    sso_on, django_user_model, monkeypatch
):
    django_user_model.objects.create_user("dana")
    names = iter(["dana", "dana-2"])  # the first was taken meanwhile, by another sign-in
    monkeypatch.setattr(sso, "_free_username", lambda claims: next(names))
    user = sso.sign_in({"sub": "7", "preferred_username": "dana", "groups": ["physics"]})
    assert user.username == "dana-2"
    assert list(user.groups.values_list("name", flat=True)) == ["physics"]


def test_an_account_made_at_sign_in_is_logged_without_a_password(db, sso_on):
    from assistants_app.models import AuditEntry

    user = sso.sign_in({"sub": "8", "preferred_username": "erin", "groups": ["physics"]})
    created = AuditEntry.objects.get(action="created", target_type="user", target_id=str(user.pk))
    assert created.changes["password"] == "(none)" and created.via == "system"
