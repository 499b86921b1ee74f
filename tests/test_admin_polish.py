"""Admin as staff use it: the model field suggests the providers' models, no OpenAI model is
prefilled for another provider, conversation starters are a few short lines, runs come
newest first and usage figures have thousands separators."""

from datetime import timedelta

import httpx
import pytest
import respx
from django.urls import reverse
from django.utils import timezone

from assistants_app.models import Assistant, Run, RunStatus

from .conftest import PROVIDER_URL
from .test_admin_usage import add_runs

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:assistants_app_assistant_add")


@pytest.fixture
def one_provider(settings, test_provider):
    settings.ASSISTANT_PROVIDERS = {"test": {**test_provider, "default_model": ""}}
    settings.DEFAULT_PROVIDER = "test"


def models_list(*ids):
    return {
        "object": "list",
        "data": [{"id": i, "object": "model", "created": 0, "owned_by": "x"} for i in ids],
    }


def test_the_model_field_suggests_the_providers_models(staff_client, one_provider):
    with respx.mock(using="httpx", assert_all_called=True) as mock:
        mock.get(f"{PROVIDER_URL}/models").respond(json=models_list("llama3.2", "qwen3"))
        page = staff_client.get(ADD_URL).content.decode()

    assert 'list="model-suggestions"' in page
    assert (
        '<datalist id="model-suggestions"><option value="llama3.2" label="test"></option>'
        '<option value="qwen3" label="test"></option></datalist>'
    ) in page


def test_a_silent_provider_leaves_the_model_field_free_text(staff_client, one_provider):
    with respx.mock(using="httpx") as mock:
        mock.get(f"{PROVIDER_URL}/models").mock(side_effect=httpx.ConnectError("refused"))
        response = staff_client.get(ADD_URL)
    assert response.status_code == 200
    assert '<datalist id="model-suggestions"></datalist>' in response.content.decode()


def test_no_openai_model_is_prefilled_for_another_provider(staff_client, one_provider):
    with respx.mock(using="httpx") as mock:
        mock.get(f"{PROVIDER_URL}/models").respond(json=models_list())
        form = staff_client.get(ADD_URL).context["adminform"].form
    assert form["model"].value() == ""
    assert "gpt-" not in (form["model"].value() or "")


def test_conversation_starters_are_up_to_four_lines(staff_client, one_provider):
    fields = {
        "name": "Gardener",
        "engine": "chat",
        "provider": "test",
        "model": "llama3.2",
        "is_active": "on",
        "tools": [],
    }
    with respx.mock(using="httpx") as mock:
        mock.get(f"{PROVIDER_URL}/models").respond(json=models_list())
        too_many = staff_client.post(ADD_URL, {**fields, "conversation_starters": "a\nb\nc\nd\ne"})
        saved = staff_client.post(
            ADD_URL, {**fields, "conversation_starters": "Plan a bed\n\n  Which roses?  \n"}
        )

    assert too_many.status_code == 200
    assert "At most 4 starters." in too_many.content.decode()
    assert saved.status_code == 302
    assert Assistant.objects.get().conversation_starters == ["Plan a bed", "Which roses?"]


def test_runs_are_listed_newest_first_with_thousands_separators(staff_client, alice_thread):
    now = timezone.now()
    old = Run.objects.create(
        thread=alice_thread, status=RunStatus.COMPLETED, created_at=now - timedelta(days=2)
    )
    new = Run.objects.create(
        thread=alice_thread, status=RunStatus.COMPLETED, created_at=now, total_tokens=1234567
    )
    response = staff_client.get(reverse("admin:assistants_app_run_changelist"))
    assert [run.pk for run in response.context["cl"].result_list] == [new.pk, old.pk]
    assert "1,234,567" in response.content.decode()


def test_the_usage_report_separates_thousands(staff_client, alice_thread):
    add_runs(alice_thread, 1, tokens=1234567)
    page = staff_client.get(reverse("admin:assistants_app_usagereport_changelist"))
    html = page.content.decode()
    assert "1,234,567 tokens" in html
    assert "<td>617,283</td><td>0</td><td>617,284</td><td>1,234,567</td>" in html
