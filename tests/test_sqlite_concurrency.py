"""The embedded default (SQLite) under a small team: many people sending at once, double-clicks,
and run drivers writing from two processes. Real daphne processes on one SQLite file."""

import asyncio
import json
import threading
from contextlib import AsyncExitStack

import httpx
import pytest

from .live import SiteClient, is_assistant_message, is_run_status, receive_until, start_site

# Real processes on a machine that may be busy with other work: minutes, not the default 2.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
PASSWORD = "team-password-1"
# The password is hashed once for all (the real hasher is slow on purpose); each login still
# checks it.
CREATE_USERS = """
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
password = make_password({password!r})
get_user_model().objects.bulk_create(
    get_user_model()(username=name, password=password) for name in {names!r}
)
"""


def team(site, size: int) -> list[SiteClient]:
    """`size` people logged in, spread over the site's processes."""
    names = [f"member{i}" for i in range(size)]
    site.manage(
        "shell", "--verbosity", "0", "-c", CREATE_USERS.format(names=names, password=PASSWORD)
    )
    return [
        SiteClient(site, name, url=site.urls[i % len(site.urls)], password=PASSWORD)
        for i, name in enumerate(names)
    ]


def send_at_once(sends: list[tuple[SiteClient, int]]) -> list[int]:
    """Post one message per (person, thread) pair, all released at the same moment, each on a
    connection of its own; the status codes, in order."""
    barrier = threading.Barrier(len(sends))
    statuses = [0] * len(sends)

    def send(index: int, person: SiteClient, thread_id: int) -> None:
        with httpx.Client(base_url=person.url, cookies=person.http.cookies, timeout=60) as http:
            barrier.wait()
            response = http.post(
                f"/threads/{thread_id}/messages/",
                json={"text": f"Hello number {index}"},
                headers={"X-CSRFToken": person.http.cookies["csrftoken"]},
            )
            statuses[index] = response.status_code

    workers = [threading.Thread(target=send, args=(i, *s)) for i, s in enumerate(sends)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return statuses


async def hello(socket) -> None:
    await socket.send(json.dumps({"type": "hello", "last_message_id": None}))


def runs_and_answers(site) -> list[list]:
    """Per run: status and how many assistant messages it stored."""
    return site.query(
        "[[r.status, r.messages.filter(role='assistant').count()] for r in Run.objects.all()]"
    )


async def test_a_team_sending_at_once_gets_every_answer_once_on_the_page(tmp_path):
    # Two processes on one file: their posts and their run drivers all write at once. Without
    # Redis each drives only its own sockets' runs (no worker loop: a worker in one process
    # would take runs whose pages are on the other, which would not hear their answers).
    env = {"STREAM_SAVE_SECONDS": "0.05", "RUN_WORKER_IN_SERVER": "0"}
    with start_site(tmp_path, servers=2, env=env) as site:
        people = team(site, 8)
        sends = [(person, person.start_thread()) for person in people for _ in range(3)]
        async with AsyncExitStack() as stack:
            sockets = [
                await stack.enter_async_context(person.websocket(thread_id))
                for person, thread_id in sends
            ]
            for socket in sockets:
                await hello(socket)

            statuses = await asyncio.to_thread(send_at_once, sends)

            assert statuses == [201] * len(sends)
            for socket in sockets:
                events = await receive_until(socket, is_run_status("completed"), timeout=60)
                assert len([e for e in events if is_assistant_message(e)]) == 1
        assert runs_and_answers(site) == [["completed", 1]] * len(sends)


async def test_double_clicks_get_one_201_and_one_409_each_and_spend_one_send(tmp_path):
    # Answers take 3 s: the second click of a pair must meet the first's run still going,
    # however long twenty sends queue for SQLite's lock (the process that starts a run drives
    # it at once, and a 0.3 s answer could end before a slow second click is stored).
    with start_site(tmp_path, env={"MESSAGES_PER_MINUTE": "2"}, latency=3.0) as site:
        people = team(site, 10)
        threads = [(person, person.start_thread()) for person in people]
        sends = [send for pair in threads for send in (pair, pair)]

        statuses = await asyncio.to_thread(send_at_once, sends)

        for click in range(0, len(sends), 2):
            assert sorted(statuses[click : click + 2]) == [201, 409]
        await until_all_completed(site)
        # The refused click did not use up the minute's second send.
        assert await asyncio.to_thread(send_at_once, threads) == [201] * len(threads)
        await until_all_completed(site)
        assert runs_and_answers(site) == [["completed", 1]] * 2 * len(threads)


async def until_all_completed(site) -> None:
    async with asyncio.timeout(60):
        while any(status != "completed" for status, _ in runs_and_answers(site)):
            await asyncio.sleep(0.5)
