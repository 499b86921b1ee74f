"""Edit, versions and regenerate through real daphne and the simulator, on every engine: the
simulator quotes the message before the prompt from the history it was given (seeded into a
new provider conversation or thread, or sent), so its reply shows which branch it saw."""

import json

import pytest

from .live import SiteClient, is_assistant_message, is_run_status, receive_until, start_site

pytestmark = pytest.mark.slow


def act(alice: SiteClient, path: str, body: dict | None = None):
    response = alice.http.post(
        path, json=body or {}, headers={"X-CSRFToken": alice.http.cookies["csrftoken"]}
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


async def answered(socket) -> dict:
    """The assistant message of the run that completes next."""
    events = await receive_until(socket, is_run_status("completed"))
    return [e["message"] for e in events if is_assistant_message(e)][-1]


ENGINES = ["responses", "assistants", "chat"]
BRANCHES = """
from assistants_app.models import Assistant
for engine in {engines!r}:
    Assistant.objects.create(name=f"Branches {{engine}}", instructions="Be brief.",
                             model="simulator", engine=engine, provider="simulator")
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One site for the three engines' tests, started once instead of three times: an
    assistant "Branches <engine>" each, so each test's runs go through its own engine. Fair use
    is tested elsewhere; here alice sends five messages a test, more than 10 a minute in all."""
    env = {"MESSAGES_PER_MINUTE": "0"}
    with start_site(tmp_path_factory.mktemp("tree"), env=env, latency=0.1) as site:
        site.shell(BRANCHES.format(engines=ENGINES))
        yield site


@pytest.mark.parametrize("engine", ENGINES)
async def test_each_engine_answers_from_the_branch_it_is_given(site, engine):
    alice = SiteClient(site, "alice")
    thread = alice.start_thread(f"Branches {engine}")
    base = f"/threads/{thread}"
    async with alice.websocket(thread) as socket:
        await socket.send(json.dumps({"type": "hello", "last_message_id": None}))
        first = alice.post(thread, "My name is Ann").json()["message"]
        await answered(socket)
        alice.post(thread, "What is my name?")
        ann_answer = await answered(socket)
        assert "Before that you said: “My name is Ann”" in ann_answer["html"]

        # Edit the first message: a new branch from the root.
        act(alice, f"{base}/messages/{first['id']}/edit/", {"text": "My name is Bob"})
        await answered(socket)
        alice.post(thread, "What is my name?")
        answer = await answered(socket)
        assert "Before that you said: “My name is Bob”" in answer["html"]
        assert "turn 2" in answer["html"]

        # Back to the first version, and a new answer to its second message: the provider
        # is given the first branch's history again (a new, seeded conversation).
        act(alice, f"{base}/version/", {"message": first["id"]})
        page = alice.http.get(f"{base}/").text
        assert "My name is Ann" in page and "My name is Bob" not in page
        assert '<span class="count">1/2</span>' in page
        act(alice, f"{base}/messages/{ann_answer['id']}/regenerate/")
        answer = await answered(socket)
        assert "Before that you said: “My name is Ann”" in answer["html"]
        assert "turn 2" in answer["html"]
