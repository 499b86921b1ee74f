"""Chat Completions runs through real daphne and the simulator over loopback."""

import json

import pytest

from .live import SiteClient, is_assistant_message, is_run_status, receive_until, start_site

pytestmark = pytest.mark.slow


def csrf_of(client: SiteClient) -> dict:
    return {"X-CSRFToken": client.http.cookies["csrftoken"]}


def is_finished(event: dict) -> bool:
    return event["type"] == "run.status" and event["run"]["is_terminal"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One Chat Completions site for the module, started once instead of once a test: "Sim"
    answers, "Sim break-stream" breaks off its stream, "Sim stuck" never finishes."""
    faults = ("break-stream", "stuck")
    with start_site(tmp_path_factory.mktemp("chat"), engine="chat", faults=faults) as site:
        yield site


async def test_a_chat_thread_is_answered_with_its_history(site):
    alice = SiteClient(site, "alice")
    thread_id = alice.start_thread()
    async with alice.websocket(thread_id) as socket:
        await socket.send(json.dumps({"type": "hello", "last_message_id": None}))
        assert alice.post(thread_id, "Hello there").status_code == 201
        first = await receive_until(socket, is_run_status("completed"))
        assert alice.post(thread_id, "Show me a list").status_code == 201
        second = await receive_until(socket, is_run_status("completed"))

    statuses = [e["run"]["status"] for e in first if e["type"] == "run.status"]
    assert statuses == ["queued", "in_progress", "completed"]
    [answer] = [e["message"]["html"] for e in first if is_assistant_message(e)]
    assert "Simulated reply" in answer and "turn 1" in answer
    [answer] = [e["message"]["html"] for e in second if is_assistant_message(e)]
    assert "turn 2" in answer  # the first exchange was sent along
    assert "<strong>third</strong> point" in answer


async def test_a_broken_stream_fails_visibly_and_can_be_retried(site):
    alice, bob = SiteClient(site, "alice"), SiteClient(site, "bob")
    thread_id = alice.start_thread("Sim break-stream")
    async with alice.websocket(thread_id) as socket:
        await socket.send(json.dumps({"type": "hello", "last_message_id": None}))
        alice.post(thread_id, "Hello there")
        failed = await receive_until(socket, is_finished)
        retry_url = f"/threads/{thread_id}/retry/"
        assert bob.http.post(retry_url, headers=csrf_of(bob)).status_code == 404
        retried = alice.http.post(retry_url, headers=csrf_of(alice))
        again = await receive_until(socket, is_finished)
    page = alice.http.get(f"/threads/{thread_id}/").text

    run = failed[-1]["run"]
    assert (run["status"], run["error_code"], run["can_retry"]) == ("failed", "stream_broken", True)
    assert run["error_message"] == "The answer stopped before it was finished."
    [partial] = [e["message"] for e in failed if is_assistant_message(e)]
    assert partial["partial"] and "Simulated reply" in partial["html"]
    assert "This is turn" not in partial["html"]  # it broke off before that
    assert retried.status_code == 201
    assert again[-1]["run"]["id"] == retried.json()["run"]["id"] != run["id"]
    # The message once, and a partial answer for each of the two runs.
    assert page.count('class="message user"') == 1
    # One answer with two versions: the broken one and the retry, shown `< 2/2 >`.
    assert page.count('class="message assistant"') == 1
    assert page.count('class="version"') == 1
    assert '<span class="count">2/2</span>' in page
    # Said as what it was, a failure, never as if the person had stopped it.
    assert "The assistant could not answer. The answer stopped before it was finished." in page
    assert "You stopped" not in page


async def test_stop_keeps_what_was_said_so_far(site):
    alice = SiteClient(site, "alice")
    thread_id = alice.start_thread("Sim stuck")
    async with alice.websocket(thread_id) as socket:
        await socket.send(json.dumps({"type": "hello", "last_message_id": None}))
        alice.post(thread_id, "Tell me a story")
        # Stop once the first word has reached the page; the rest never will come.
        events = await receive_until(socket, lambda e: e["type"] == "message.delta")
        stopped = alice.http.post(f"/threads/{thread_id}/cancel/", headers=csrf_of(alice))
        events += await receive_until(socket, is_finished)

    assert stopped.status_code == 200
    assert events[-1]["run"]["status"] == "cancelled"
    [partial] = [e["message"] for e in events if is_assistant_message(e)]
    assert partial["partial"] and "Simulated" in partial["html"]
    assert "You said" not in partial["html"]
    # The first word reached the page before the answer stopped.
    assert any(e["type"] == "message.delta" and "Simulated" in e["text"] for e in events)
