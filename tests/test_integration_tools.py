"""Tools through real processes: daphne, the simulator and the real `mcp-server-time`; every
engine's run calls it and shows the step live; a pause for approval outlives a killed
server."""

import json
import signal

import pytest

from .live import SiteClient, is_run_status, receive_until, start_site
from .mcp_servers import seed_tools

pytestmark = pytest.mark.slow

ASK = "What time is it in Paris? time__get_current_time Europe/Paris"


def csrf_of(client: SiteClient) -> dict:
    return {"X-CSRFToken": client.http.cookies["csrftoken"], "Accept": "application/json"}


async def hello(socket, last_message_id=None) -> None:
    await socket.send(json.dumps({"type": "hello", "last_message_id": last_message_id}))


def is_step(state: str):
    return lambda event: event["type"] == "tool.step" and event["step"]["state"] == state


@pytest.fixture(scope="module")
def tools_site(tmp_path_factory):
    """One site for the three engines' tests: an assistant "Tools <engine>" each, so each
    test's run goes through its own engine, and a site started once instead of three times."""
    with start_site(tmp_path_factory.mktemp("tools"), latency=0.1) as site:
        seed_tools(site)
        yield site


@pytest.mark.parametrize("engine", ["responses", "chat", "assistants"])
async def test_every_engine_calls_the_tool_and_shows_the_step(tools_site, engine):
    alice = SiteClient(tools_site, "alice")
    thread_id = alice.start_thread(f"Tools {engine}")
    async with alice.websocket(thread_id) as socket:
        await hello(socket)
        assert alice.post(thread_id, ASK).status_code == 201
        events = await receive_until(socket, is_run_status("completed"), timeout=30)

    states = [e["step"]["state"] for e in events if e["type"] == "tool.step"]
    assert states[0] == "approved" and states[-1] == "done" and "running" in states
    [done] = [e["step"] for e in events if is_step("done")(e)]
    assert done["tool"] == "time__get_current_time"
    assert '"timezone": "Europe/Paris"' in done["output"] and done["duration_ms"] > 0
    [answer] = [e["message"]["html"] for e in events if e["type"] == "message.created"
                and e["message"]["role"] == "assistant"]  # fmt: skip
    assert "time__get_current_time</code> answered" in answer and "Europe/Paris" in answer


async def test_a_pause_for_approval_outlives_a_killed_server(tmp_path):
    with start_site(tmp_path, engine="chat", env={"RUN_LEASE_SECONDS": "2"}) as site:
        seed_tools(site, approval="ask", engines=("chat",))
        alice = SiteClient(site, "alice")
        thread_id = alice.start_thread("Tools chat")
        first_server = site.processes[-1]
        async with alice.websocket(thread_id) as socket:
            await hello(socket)
            alice.post(thread_id, ASK)
            [asked] = [e for e in await receive_until(socket, is_step("awaiting_approval"))
                       if is_step("awaiting_approval")(e)]  # fmt: skip
            first_server.send_signal(signal.SIGKILL)
            first_server.wait()

        port = int(site.url.rsplit(":", 1)[1])
        site.start_daphne(port=port)  # the same address, a new process: as after a restart
        async with alice.websocket(thread_id) as socket:
            await hello(socket)
            # The question is still there after the restart, replayed to the page.
            replayed = await receive_until(socket, is_step("awaiting_approval"))
            step_id = asked["step"]["id"]
            decided = alice.http.post(
                f"/threads/{thread_id}/tool-calls/{step_id}/approve/", headers=csrf_of(alice)
            )
            # The answer shows the step as it is once decided: the driver, looking every
            # moment, may have started the call between the decision and that read.
            assert decided.json()["step"]["state"] in ("approved", "running", "done")
            events = await receive_until(socket, is_run_status("completed"), timeout=30)

    assert [e["step"]["id"] for e in replayed if is_step("awaiting_approval")(e)] == [step_id]
    answers = [e for e in events if e["type"] == "message.created"]
    assert len(answers) == 1 and "Europe/Paris" in answers[0]["message"]["html"]
    runs = site.query("list(Run.objects.values_list('status', flat=True))")
    steps = site.query("list(ToolStep.objects.values_list('state', flat=True))")
    assert (runs, steps) == (["completed"], ["done"])  # one call, run once
