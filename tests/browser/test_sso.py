"""Single sign-on in Chromium: a site with password login turned off, a real OpenID provider
beside it (tests/oidc.py), a person signing in there, seeing the assistants of their groups,
logging out of both, and losing an assistant when the provider drops their group."""

import pytest
from playwright.sync_api import expect

from ..live import start_site
from ..oidc import start_provider
from .conftest import axe_violations, screenshot

pytestmark = pytest.mark.slow

PHYSICS_TUTOR = """
from django.contrib.auth.models import Group
from assistants_app.models import Assistant
tutor = Assistant.objects.create(name="Physics tutor", model="simulator", engine="responses",
                                 provider="simulator")
tutor.groups.set([Group.objects.create(name="physics")])
"""


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    with start_provider(tmp_path_factory.mktemp("provider")) as provider:
        provider.set_user("dana", "dana-password-1", ["physics"])
        yield provider


@pytest.fixture(scope="module")
def sso_site(tmp_path_factory, provider):
    env = {
        "OIDC_ISSUER": provider.issuer,
        "OIDC_CLIENT_ID": "chat-site",
        "OIDC_CLIENT_SECRET": "site-secret",
        "OIDC_PROVIDER_NAME": "Example ID",
        "LOCAL_LOGIN_ENABLED": "0",
    }
    with start_site(tmp_path_factory.mktemp("sso-site"), env=env) as site:
        site.manage("shell", "--verbosity", "0", "-c", PHYSICS_TUTOR)
        provider.set_client(
            "chat-site", "site-secret", [f"{site.url}/oidc/callback/"], [f"{site.url}/login/"]
        )
        yield site


def sign_in(page, site) -> None:
    page.goto(f"{site.url}/login/")
    page.get_by_role("link", name="Sign in with Example ID").click()
    page.locator("#provider-username").fill("dana")
    page.locator("#provider-password").fill("dana-password-1")
    page.get_by_role("button", name="Sign in to the provider").click()
    page.wait_for_url(f"{site.url}/")


def offered_assistants(page) -> list[str]:
    return page.get_by_label("Assistant", exact=True).locator("option").all_inner_texts()


def test_a_person_signs_in_with_the_provider_and_out_of_both(sso_site, provider, open_context):
    page = open_context().new_page()
    page.goto(f"{sso_site.url}/login/")
    # Password login is off: the page offers the provider alone.
    expect(page.get_by_role("link", name="Sign in with Example ID")).to_be_visible()
    expect(page.locator("input[type=password]")).to_have_count(0)
    screenshot(page, "sso-login")
    assert axe_violations(page) == []

    sign_in(page, sso_site)
    assert any(name.startswith("Physics tutor") for name in offered_assistants(page))
    page.get_by_role("link", name="dana", exact=True).click()
    expect(page.locator("#account-groups")).to_have_text("physics")
    expect(page.get_by_text("Signs in with")).to_be_visible()
    screenshot(page, "sso-account")

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{sso_site.url}/login/")
    # The provider's session ended too: signing in asks for the password again.
    page.get_by_role("link", name="Sign in with Example ID").click()
    expect(page.locator("#provider-password")).to_be_visible()


def test_a_group_dropped_at_the_provider_takes_its_assistant_away(sso_site, provider, open_context):
    page = open_context().new_page()
    sign_in(page, sso_site)
    assert any(name.startswith("Physics tutor") for name in offered_assistants(page))
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{sso_site.url}/login/")

    provider.set_user("dana", "dana-password-1", [])
    sign_in(page, sso_site)
    assert not any(name.startswith("Physics tutor") for name in offered_assistants(page))
    assert offered_assistants(page)  # the assistants open to everyone are still there
