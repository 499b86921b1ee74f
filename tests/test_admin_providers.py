"""The admin's provider page: every provider, and whether its model list answers."""

import httpx
import pytest
import respx
from django.urls import reverse

from assistants_app.engines import capabilities
from assistants_app.models import Assistant, ProviderCapabilities

from .conftest import PROVIDER_URL

DOWN_URL = "http://127.0.0.1:11434/v1"
STATUS_URL = "admin:assistants_app_provider_status"


@pytest.fixture
def two_providers(settings, test_provider):
    settings.ASSISTANT_PROVIDERS = {
        "test": {**test_provider, "api_key_env": "TEST_API_KEY", "default_model": "gpt-test"},
        "ollama": {"base_url": DOWN_URL, "api_key": "", "label": "Ollama", "simulated": False},
    }


def test_it_shows_which_providers_answer(staff_client, two_providers):
    models = {"object": "list", "data": [
        {"id": "gpt-test", "object": "model", "created": 0, "owned_by": "test"},
        {"id": "llama-test", "object": "model", "created": 0, "owned_by": "test"},
    ]}  # fmt: skip
    with respx.mock(using="httpx", assert_all_called=True) as mock:
        listed = mock.get(f"{PROVIDER_URL}/models").respond(json=models)
        mock.get(f"{DOWN_URL}/models").mock(side_effect=httpx.ConnectError("refused"))
        page = staff_client.get(reverse(STATUS_URL))

    assert page.status_code == 200
    html = page.content.decode()
    assert "Answers: 2 models: gpt-test, llama-test" in html
    assert "Not answering: Could not connect to the provider." in html
    assert "<code>TEST_API_KEY</code>" in html
    assert "sk-test" not in html  # the key itself never shows
    assert listed.calls.last.request.headers["authorization"] == "Bearer sk-test"


def test_it_shows_a_provider_that_answers_with_an_error(staff_client, two_providers):
    with respx.mock(using="httpx", assert_all_called=True) as mock:
        mock.get(f"{PROVIDER_URL}/models").respond(
            401,
            json={"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}},
        )
        mock.get(f"{DOWN_URL}/models").respond(200, text="<html>not an API</html>")
        page = staff_client.get(reverse(STATUS_URL))

    assert page.status_code == 200
    html = page.content.decode()
    assert "Not answering: The provider refused the API key (HTTP 401): Incorrect API" in html
    assert "Not answering: The provider&#x27;s answer is not in the API&#x27;s format" in html


def test_the_assistant_list_links_to_it(staff_client):
    page = staff_client.get(reverse("admin:assistants_app_assistant_changelist"))

    assert reverse(STATUS_URL) in page.content.decode()


def test_it_is_for_staff_only(alice_client, two_providers):
    page = alice_client.get(reverse(STATUS_URL))

    assert page.status_code == 302
    assert page.url.startswith(reverse("admin:login"))


def test_the_assistant_form_offers_the_configured_providers(staff_client, two_providers):
    page = staff_client.get(reverse("admin:assistants_app_assistant_add"))

    html = page.content.decode()
    assert '<option value="ollama">ollama (Ollama)</option>' in html
    assert '<option value="test">test (Test)</option>' in html


def test_the_assistant_form_wants_a_model_unless_the_provider_has_a_default(
    staff_client, two_providers
):
    form = {"name": "Local", "engine": "chat", "model": "", "is_active": "on"}
    add = reverse("admin:assistants_app_assistant_add")

    refused = staff_client.post(add, {**form, "provider": "ollama"})
    accepted = staff_client.post(add, {**form, "provider": "test"})

    assert "this provider has no default model" in refused.content.decode()
    assert accepted.status_code == 302
    assert Assistant.objects.get().provider == "test"


def test_checking_a_provider_shows_what_it_offers(staff_client, two_providers, monkeypatch):
    asked = []

    async def probe(provider, model, responses=True):
        asked.append((provider["name"], model))
        return capabilities.Capabilities(
            responses=True, conversations=False, background=False,
            tokenizer="http://127.0.0.1:8080/tokenize", context_sizes={"local": 2048},
            notes=["This provider has no /v1/conversations (HTTP 404)."],
        )  # fmt: skip

    monkeypatch.setattr(capabilities, "probe", probe)

    checked = staff_client.post(reverse(STATUS_URL), {"provider": "test"})
    with respx.mock(using="httpx") as mock:
        mock.get(f"{PROVIDER_URL}/models").respond(json={"object": "list", "data": []})
        mock.get(f"{DOWN_URL}/models").mock(side_effect=httpx.ConnectError("refused"))
        page = staff_client.get(reverse(STATUS_URL)).content.decode()

    assert checked.status_code == 302
    assert asked == [("test", "gpt-test")]  # with its default model
    assert ProviderCapabilities.objects.get(provider="test").conversations is False
    assert "Conversations: no" in page and "Background mode: no" in page
    assert "Responses API: yes" in page and "Cancel: not checked" in page
    assert "<code>http://127.0.0.1:8080/tokenize</code>" in page
    assert "local 2048 tokens" in page
    assert "This provider has no /v1/conversations" in page
    assert "Not checked yet." in page  # ollama


def test_only_staff_who_may_change_assistants_can_check(client, alice, two_providers):
    client.force_login(alice)

    response = client.post(reverse(STATUS_URL), {"provider": "test"})

    assert response.status_code == 302 and "/login/" in response["Location"]
    assert not ProviderCapabilities.objects.exists()
