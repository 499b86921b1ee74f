"""The Assistants API engine end to end: real daphne and the simulator over loopback."""

import json

import pytest

from .live import SiteClient, is_assistant_message, is_run_status, receive_until, start_site
from .streamed import written

pytestmark = pytest.mark.slow

# "Sim" may call both tools; "Sim stuck" never finishes by itself.
GIVE_TOOLS = """
from assistants_app.models import Assistant
Assistant.objects.filter(name="Sim").update(tools=["current_datetime", "search_my_messages"])
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    path = tmp_path_factory.mktemp("assistants")
    # 25 tokens a second: an answer takes over a second to write, long enough to stop midway.
    env = {"SIMULATOR_TOKENS_PER_SECOND": "25"}
    with start_site(path, env=env, engine="assistants", faults=("stuck", "break-stream")) as site:
        site.manage("shell", "--verbosity", "0", "-c", GIVE_TOOLS)
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
    thread = f"Thread.objects.get(pk={thread_id})"
    assert site.query(f"{thread}.assistant.remote_id").startswith("asst_")
    assert site.query(f"{thread}.remote_id").startswith("thread_")
    messages = site.query(f"list({thread}.messages.values_list('remote_id', flat=True))")
    assert [remote_id[:4] for remote_id in messages] == ["msg_", "msg_"]
    assert site.query(f"{thread}.runs.get().remote_id").startswith("run_")


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
    thread_id = alice.start_thread("Sim stuck")
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


def is_finished(event: dict) -> bool:
    return event["type"] == "run.status" and event["run"]["is_terminal"]


async def stream(client: SiteClient, assistant: str, text: str) -> list[dict]:
    thread_id = client.start_thread(assistant)
    async with client.websocket(thread_id) as socket:
        await socket.send(json.dumps({"type": "hello", "last_message_id": None}))
        assert client.post(thread_id, text).status_code == 201
        return await receive_until(socket, is_finished)


async def test_an_answer_streams_to_the_page_word_by_word(site):
    events = await stream(SiteClient(site, "alice"), "Sim", "Hello there")

    deltas = [e for e in events if e["type"] == "message.delta"]
    assert len(deltas) >= 3  # it arrived in pieces over a second or more, not at once
    [answer] = [e["message"] for e in events if is_assistant_message(e)]
    assert events.index(deltas[-1]) < events.index(next(filter(is_assistant_message, events)))
    assert written(events).startswith("_Simulated reply from the offline simulator")
    assert "This is turn 1 of this conversation." in written(events)
    assert "This is turn 1 of this conversation." in answer["html"]
    assert events[-1]["run"]["status"] == "completed"


async def test_a_broken_stream_falls_back_to_polling_and_the_answer_arrives_whole(site):
    events = await stream(SiteClient(site, "alice"), "Sim break-stream", "Hello there")

    assert events[-1]["run"]["status"] == "completed"
    [answer] = [e["message"] for e in events if is_assistant_message(e)]
    shown_live = written(events)
    assert shown_live.startswith("_Simulated reply") and "This is turn" not in shown_live
    assert "This is turn 1 of this conversation." in answer["html"] and not answer["partial"]


async def test_stop_mid_stream_keeps_what_was_said_marked_as_stopped(site):
    alice = SiteClient(site, "alice")
    thread_id = alice.start_thread("Sim")
    async with alice.websocket(thread_id) as socket:
        await socket.send(json.dumps({"type": "hello", "last_message_id": None}))
        assert alice.post(thread_id, "Tell me a story").status_code == 201
        events = await receive_until(socket, lambda e: e["type"] == "message.delta")
        stopped = alice.cancel(thread_id)
        events += await receive_until(socket, is_finished)

    assert stopped.status_code == 200
    assert events[-1]["run"]["status"] == "cancelled"
    [partial] = [e["message"] for e in events if is_assistant_message(e)]
    assert partial["partial"] and "Simulated" in partial["html"]
    assert "This is turn" not in partial["html"]  # stopped before the end
