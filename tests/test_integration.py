"""A whole chat through real daphne and the simulator over loopback, as a browser would."""

import json
from pathlib import Path

import pytest

from .live import SiteClient, is_assistant_message, is_run_status, receive_until, start_site

pytestmark = pytest.mark.slow


# One site for the module: each test makes threads of its own and only reads those.
@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with start_site(tmp_path_factory.mktemp("site")) as site:
        yield site


async def test_a_chat_completes_over_a_real_websocket(site):
    alice = SiteClient(site, "alice")
    thread_id = alice.start_thread()
    async with alice.websocket(thread_id) as socket:
        await socket.send(json.dumps({"type": "hello", "last_message_id": None}))
        response = alice.post(thread_id, "Hello there, show me some code")
        assert response.status_code == 201
        events = await receive_until(socket, is_run_status("completed"))

    statuses = [e["run"]["status"] for e in events if e["type"] == "run.status"]
    assert statuses[0] == "queued" and statuses[-1] == "completed"
    answers = [e["message"] for e in events if is_assistant_message(e)]
    assert len(answers) == 1
    answer = answers[0]
    assert "Simulated reply" in answer["html"]
    assert '<pre tabindex="0"><code' in answer["html"]  # the canned code sample, rendered


def test_the_site_is_served_by_daphne_on_uvloop(site):
    # Started as manage.py serve starts it (serve.daphne_args): python -m chatsite.server.
    server = site.servers[0].pid
    assert "chatsite.server" in Path(f"/proc/{server}/cmdline").read_text()
    assert "/uvloop/loop." in Path(f"/proc/{server}/maps").read_text()  # its loop's library


async def test_bob_cannot_open_alices_thread_socket(site):
    alice, bob = SiteClient(site, "alice"), SiteClient(site, "bob")
    thread_id = alice.start_thread()
    async with bob.websocket(thread_id) as socket:
        with pytest.raises(Exception) as closed:
            await socket.recv()
    assert closed.value.rcvd.code == 4404
