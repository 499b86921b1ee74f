"""`manage.py chat`: the classic Assistants API example in a terminal, on the site's engines."""

import io

import pytest
from django.core.management import CommandError, call_command

from assistants_app.models import Assistant, EngineKind, Message, Thread
from tests.assistants_api import (
    completed_run,
    message_list,
    provider,
    remote_message,
    remote_run,
    sent,
)

pytestmark = pytest.mark.django_db(transaction=True)

REMOTE_ASSISTANT = {"id": "asst_1", "object": "assistant", "created_at": 1767225600,
                    "model": "gpt-test", "name": "Classic", "tools": []}  # fmt: skip
MODELS = {"object": "list", "data": [
    {"id": "llama-test", "object": "model", "created": 0, "owned_by": "test"},
]}  # fmt: skip
REMOTE_THREAD = {"id": "thread_1", "object": "thread", "created_at": 1767225600, "metadata": {}}


def chat(monkeypatch, typed: str, *args: str) -> str:
    monkeypatch.setattr("sys.stdin", io.StringIO(typed))
    out = io.StringIO()
    call_command("chat", *args, stdout=out, stderr=out)
    return out.getvalue()


def mock_one_turn(mock, run_payload: dict, *answers: dict):
    mock.post("/threads").respond(json=REMOTE_THREAD)
    mock.post("/threads/thread_1/messages").respond(
        json=remote_message("Hello", "msg_u1", role="user")
    )
    mock.post("/threads/thread_1/runs").respond(json=remote_run())
    mock.get("/threads/thread_1/runs/run_1").respond(json=run_payload)
    if answers:
        mock.get("/threads/thread_1/messages").respond(json=message_list(*answers))


def test_it_chats_with_a_new_assistant_like_the_classic_example(monkeypatch, alice):
    typed = "Classic\nAnswer briefly.\nHello\nexit()\n"
    with provider() as mock:
        mock.get("/models").respond(json=MODELS)
        mock.get("/assistants").respond(json={"object": "list", "data": [], "has_more": False})
        create = mock.post("/assistants").respond(json=REMOTE_ASSISTANT)
        mock_one_turn(mock, completed_run(), remote_message("Hi there!"))
        output = chat(monkeypatch, typed, "--user", "alice", "--provider", "test", "--model",
                      "gpt-test", "--tool", "current_datetime")  # fmt: skip

    assert (sent(create)["name"], sent(create)["instructions"]) == ("Classic", "Answer briefly.")
    assert sent(create)["tools"][0]["function"]["name"] == "current_datetime"
    assert "Test: Assistants API (v2), model gpt-test." in output
    assert "Assistant name: Instructions: " in output
    assert "You: Waiting for response...\nClassic: Hi there!\nYou: " in output
    thread = Thread.objects.get()
    assert (thread.owner, thread.remote_id, thread.title) == (alice, "thread_1", "Hello")
    assert thread.assistant.engine == EngineKind.ASSISTANTS
    assert thread.assistant.remote_id == "asst_1"
    assert list(thread.messages.values_list("role", "remote_id")) == [
        ("user", "msg_u1"), ("assistant", "msg_a1"),
    ]  # fmt: skip


def test_it_lets_you_pick_an_existing_assistant(monkeypatch, alice, assistant):
    Assistant.objects.create(name="Classic", model="gpt-test", engine=EngineKind.ASSISTANTS,
                             provider="test", remote_id="asst_1")  # fmt: skip
    with provider() as mock:  # strict: creating an assistant would fail the test
        mock_one_turn(mock, completed_run(), remote_message("Hi there!"))
        output = chat(monkeypatch, "7\n1\nHello\nexit()\n", "--user", "alice")

    assert "  1. Classic (Assistants API (v2), gpt-test)" in output
    assert "  2. Helper (Responses API, gpt-test)" in output
    assert "Answer with a number from 1 to 2." in output
    assert "Classic: Hi there!" in output


def test_it_says_why_a_run_did_not_answer(monkeypatch, alice):
    Assistant.objects.create(name="Classic", model="gpt-test", engine=EngineKind.ASSISTANTS,
                             provider="test", remote_id="asst_1")  # fmt: skip
    failed = remote_run(
        "failed", last_error={"code": "server_error", "message": "The server had an error."}
    )
    with provider() as mock:
        mock_one_turn(mock, failed)
        output = chat(monkeypatch, "1\nHello\n", "--user", "alice")  # ends at end of input

    assert "Waiting for response...\n(The run ended failed: The server had an error.)" in output
    assert not Message.objects.filter(role="assistant").exists()


def test_its_threads_show_on_the_site_for_that_user_only(monkeypatch, alice, alice_client,
                                                         bob_client):  # fmt: skip
    Assistant.objects.create(name="Classic", model="gpt-test", engine=EngineKind.ASSISTANTS,
                             provider="test", remote_id="asst_1")  # fmt: skip
    with provider() as mock:
        mock_one_turn(mock, completed_run(), remote_message("Hi there!"))
        chat(monkeypatch, "1\nHello from the terminal\nexit()\n", "--user", "alice")

    thread = Thread.objects.get()
    assert f'href="/threads/{thread.pk}/"' in alice_client.get("/").content.decode()
    assert "Hi there!" in alice_client.get(f"/threads/{thread.pk}/").content.decode()
    assert f'href="/threads/{thread.pk}/"' not in bob_client.get("/").content.decode()


def test_it_refuses_an_unknown_user(monkeypatch):
    with pytest.raises(CommandError, match="No user named 'mallory'"):
        chat(monkeypatch, "", "--user", "mallory")


def test_it_picks_chat_completions_and_the_default_model_on_a_chat_server(
    monkeypatch, alice, known_capabilities
):
    known_capabilities.responses = False  # as llama-server: neither Assistants nor Responses
    with provider() as mock:
        mock.get("/models").respond(json=MODELS)
        mock.get("/assistants").respond(404, json={"detail": "Not Found"})
        output = chat(monkeypatch, "Local\n\n", "--user", "alice", "--provider", "test")

    assert "Test: Chat Completions, model llama-test." in output
    assistant = Assistant.objects.get(name="Local")
    assert (assistant.engine, assistant.model) == (EngineKind.CHAT, "llama-test")


def test_it_says_the_simulator_must_be_running_when_it_is_not(monkeypatch, alice, settings):
    settings.ASSISTANT_PROVIDERS = {
        **settings.ASSISTANT_PROVIDERS,
        "simulator": {**settings.ASSISTANT_PROVIDERS["simulator"],
                      "base_url": "http://127.0.0.1:9/v1"},  # nothing listens on port 9
    }  # fmt: skip

    with pytest.raises(CommandError) as raised:
        chat(monkeypatch, "", "--user", "alice", "--provider", "simulator")

    said = str(raised.value)
    assert "The provider 'simulator' at http://127.0.0.1:9/v1 cannot be used" in said
    assert "refused the connection" in said
    assert "The simulator must be running: start it with `python manage.py simulator`" in said
