"""Assistants kept in step with the provider from admin: on save, by action, errors shown."""

import re

from assistants_app.models import Assistant, EngineKind
from tests.assistants_api import provider, sent

ADD_URL = "/admin/assistants_app/assistant/add/"
LIST_URL = "/admin/assistants_app/assistant/"
REFUSAL = {"error": {"message": "The model 'gpt-nope' does not exist.",
                     "type": "invalid_request_error", "code": "model_not_found"}}  # fmt: skip


def remote_assistant(assistant_id: str = "asst_1") -> dict:
    return {"id": assistant_id, "object": "assistant", "created_at": 1767225600,
            "model": "gpt-test", "name": "Classic", "tools": []}  # fmt: skip


def form(**changes) -> dict:
    data = {
        "name": "Classic", "description": "", "instructions": "Answer briefly.",
        "is_active": "on", "engine": EngineKind.ASSISTANTS, "provider": "test",
        "model": "gpt-test", "temperature": "", "tools": ["current_datetime"],
    }  # fmt: skip
    return {**data, **changes}


def test_it_creates_the_assistant_on_the_provider_when_added(staff_client):
    with provider() as mock:
        create = mock.post("/assistants").respond(json=remote_assistant())
        response = staff_client.post(ADD_URL, form())
    assert response.status_code == 302
    body = sent(create)
    assert (body["name"], body["instructions"], body["model"]) == (
        "Classic", "Answer briefly.", "gpt-test",
    )  # fmt: skip
    assert [tool["function"]["name"] for tool in body["tools"]] == ["current_datetime"]
    assistant = Assistant.objects.get()
    assert (assistant.remote_id, assistant.tools) == ("asst_1", ["current_datetime"])


def test_it_updates_the_remote_assistant_when_changed(staff_client):
    assistant = Assistant.objects.create(
        name="Classic", model="gpt-test", engine=EngineKind.ASSISTANTS, provider="test",
        remote_id="asst_1",
    )  # fmt: skip
    with provider() as mock:
        update = mock.post("/assistants/asst_1").respond(json=remote_assistant())
        staff_client.post(f"{LIST_URL}{assistant.pk}/change/", form(instructions="Be terse."))
    assert sent(update)["instructions"] == "Be terse."


def test_it_recreates_an_assistant_the_provider_no_longer_has(staff_client):
    assistant = Assistant.objects.create(
        name="Classic", model="gpt-test", engine=EngineKind.ASSISTANTS, provider="test",
        remote_id="asst_gone",
    )  # fmt: skip
    gone = {"error": {"message": "No assistant found with id 'asst_gone'.",
                      "type": "invalid_request_error", "code": None}}  # fmt: skip
    with provider() as mock:
        mock.post("/assistants/asst_gone").respond(404, json=gone)
        mock.post("/assistants").respond(json=remote_assistant("asst_2"))
        staff_client.post(f"{LIST_URL}{assistant.pk}/change/", form())
    assert Assistant.objects.get().remote_id == "asst_2"


def test_it_shows_a_provider_error_and_keeps_the_saved_row(staff_client):
    with provider() as mock:
        mock.post("/assistants").respond(400, json=REFUSAL)
        response = staff_client.post(ADD_URL, form(model="gpt-nope"), follow=True)
    shown = [str(message) for message in response.context["messages"]]
    assert any("The model 'gpt-nope' does not exist." in message for message in shown)
    assistant = Assistant.objects.get()
    assert (assistant.model, assistant.remote_id) == ("gpt-nope", "")


def test_it_does_not_call_the_provider_for_engines_without_remote_assistants(staff_client):
    with provider():  # strict: any request fails the test
        staff_client.post(ADD_URL, form(engine=EngineKind.RESPONSES))
    assert Assistant.objects.get().engine == EngineKind.RESPONSES


def test_it_resyncs_the_selected_assistants_by_action(staff_client):
    classic = Assistant.objects.create(
        name="Classic", model="gpt-test", engine=EngineKind.ASSISTANTS, provider="test",
        remote_id="asst_1",
    )  # fmt: skip
    broken = Assistant.objects.create(
        name="Broken", model="gpt-nope", engine=EngineKind.ASSISTANTS, provider="test"
    )
    modern = Assistant.objects.create(name="Modern", model="gpt-test", provider="test")
    with provider() as mock:
        update = mock.post("/assistants/asst_1").respond(json=remote_assistant())
        mock.post("/assistants").respond(400, json=REFUSAL)
        response = staff_client.post(
            LIST_URL,
            {
                "action": "sync_with_provider",
                "_selected_action": [classic.pk, broken.pk, modern.pk],
            },
            follow=True,
        )
    assert update.called
    shown = [str(message) for message in response.context["messages"]]
    assert "Synced 1 assistant(s) with their provider." in shown
    assert any(m.startswith("“Broken” is saved here, but its provider refused") for m in shown)
    assert "Skipped 1: their engine keeps no assistant on the provider." in shown


def test_it_offers_the_registered_tools_as_choices_with_the_chosen_ones_ticked(staff_client):
    assistant = Assistant.objects.create(name="Classic", provider="test",
                                         tools=["search_my_messages"])  # fmt: skip
    html = staff_client.get(f"{LIST_URL}{assistant.pk}/change/").content.decode()
    assert re.search(r'value="current_datetime"[^>]*id="id_tools_0">', html)
    assert re.search(r'value="search_my_messages"[^>]*checked>', html)


def test_it_keeps_admin_to_staff(alice_client):
    response = alice_client.get(ADD_URL)
    assert response.status_code == 302
    assert response.headers["location"].startswith("/admin/login/")
