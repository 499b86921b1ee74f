"""The Assistants API engine end to end: real daphne and the simulator over loopback."""

import json

import pytest

from .live import SiteClient, is_assistant_message, is_run_status, receive_until, start_site

pytestmark = pytest.mark.slow

# "Sim" (seeded by start_site) may call both tools; "Stuck" never finishes by itself.
SETUP = """
from assistants_app.models import Assistant
Assistant.objects.filter(name="Sim").update(tools=["current_datetime", "search_my_messages"])
Assistant.objects.create(name="Stuck", model="simulator+stuck", engine="assistants",
                         provider="simulator")
"""
REMOTE_IDS = """
from assistants_app.models import Thread
thread = Thread.objects.get(pk={pk})
messages = thread.messages.values_list("remote_id", flat=True)
runs = thread.runs.values_list("remote_id", flat=True)
print(thread.assistant.remote_id, thread.remote_id, *messages, *runs)
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with start_site(tmp_path_factory.mktemp("assistants"), engine="assistants") as site:
        site.manage("shell", "-c", SETUP)
        yield site


async def chat(client: SiteClient, thread_id: int, text: str) -> list[dict]:
    """Send a message and collect the thread's events until the run it started ends."""
    async with client.websocket(thread_id) as socket:
        await socket.send(json.dumps({"type": "hello", "last_message_id": None}))
        response = client.post(thread_id, text)
        assert response.status_code == 201
        run_id = response.json()["run"]["id"]
        events = await receive_until(socket, lambda e: _ends(e, run_id))
    # The hello replays earlier messages and runs; keep what this run did.
    return [event for event in events if _of_run(event, run_id)]


def _of_run(event: dict, run_id: int) -> bool:
    if event["type"] == "message.created":
        return event["message"]["run_id"] == run_id
    return event["type"] == "run.status" and event["run"]["id"] == run_id


def _ends(event: dict, run_id: int) -> bool:
    return _of_run(event, run_id) and event["type"] == "run.status" and event["run"]["is_terminal"]


def statuses(events: list[dict]) -> list[str]:
    return [e["run"]["status"] for e in events if e["type"] == "run.status"]


def answers(events: list[dict]) -> list[str]:
    return [e["message"]["html"] for e in events if is_assistant_message(e)]


async def test_a_chat_runs_through_assistants_threads_messages_and_runs(site):
    alice = SiteClient(site, "alice")
    thread_id = alice.start_thread("Sim")
    events = await chat(alice, thread_id, "Hello there")

    assert statuses(events)[0] == "queued" and statuses(events)[-1] == "completed"
    [answer] = answers(events)
    assert "Simulated reply" in answer
    printed = site.manage("shell", "--no-imports", "-c", REMOTE_IDS.format(pk=thread_id))
    remote_assistant, remote_thread, *rest = printed.split()
    assert remote_assistant.startswith("asst_") and remote_thread.startswith("thread_")
    user_message, assistant_message, run = rest
    assert user_message.startswith("msg_") and assistant_message.startswith("msg_")
    assert run.startswith("run_")


async def test_a_run_calls_function_tools_for_the_asking_user_only(site):
    alice, bob = SiteClient(site, "alice"), SiteClient(site, "bob")
    await chat(bob, bob.start_thread("Sim"), "My secret pizza recipe")
    thread_id = alice.start_thread("Sim")
    await chat(alice, thread_id, "I love pizza with olives")

    events = await chat(alice, thread_id, "search_my_messages pizza")

    assert "requires_action" in statuses(events)
    assert statuses(events)[-1] == "completed"
    [answer] = answers(events)
    assert "search_my_messages" in answer and "I love pizza with olives" in answer
    assert "secret pizza recipe" not in answer


async def test_alice_stops_a_run_and_bob_cannot(site):
    alice, bob = SiteClient(site, "alice"), SiteClient(site, "bob")
    thread_id = alice.start_thread("Stuck")
    async with alice.websocket(thread_id) as socket:
        await socket.send(json.dumps({"type": "hello", "last_message_id": None}))
        assert alice.post(thread_id, "Take your time").status_code == 201
        await receive_until(socket, is_run_status("in_progress"))

        assert bob.cancel(thread_id).status_code == 404
        response = alice.cancel(thread_id)
        assert response.status_code == 200
        events = await receive_until(socket, is_run_status("cancelled"))

    assert response.json()["run"]["status"] == "cancelling"
    assert not answers(events)
