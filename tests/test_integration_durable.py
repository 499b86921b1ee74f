"""Durable runs with real processes: closed tabs, killed servers, two tabs, provider faults,
and two daphne processes on PostgreSQL and Redis."""

import asyncio
import json
import signal

import pytest

from .live import (
    SiteClient,
    is_assistant_message,
    is_run_status,
    postgres_database,
    receive_until,
    start_site,
)

pytestmark = pytest.mark.slow
FAULTS = ("rate-limit-storm", "error-500-storm", "slow", "fail", "stuck", "drop")


def assistant_messages(site, thread_id: int) -> list[str]:
    return site.query(
        f"list(Message.objects.filter(thread_id={thread_id}, role='assistant')"
        ".values_list('text', flat=True))"
    )


def on_its_branch(site, thread_id: int) -> bool:
    """The thread's one answer follows the message it answers and is the thread's leaf."""
    return site.query(
        f"[(m.parent_id == m.run.prompt_id and m.thread.current_leaf_id == m.pk) "
        f"for m in Message.objects.filter(thread_id={thread_id}, role='assistant')] == [True]"
    )


def latest_run(site, thread_id: int) -> dict:
    return site.query(
        f"Run.objects.filter(thread_id={thread_id}).values('status', 'error_code', "
        "'error_message').last()"
    )


async def hello(socket, last_message_id=None):
    await socket.send(json.dumps({"type": "hello", "last_message_id": last_message_id}))


async def wait_until(condition, timeout: float = 15.0):
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A site for the tests that stop no server, started once for them: answers take a
    second, long enough for a tab to close before one is done."""
    with start_site(tmp_path_factory.mktemp("durable"), latency=1.0) as site:
        yield site


async def test_the_answer_is_stored_after_the_tab_closes_mid_run(site):
    alice = SiteClient(site, "alice")
    thread_id = alice.start_thread()
    async with alice.websocket(thread_id) as socket:
        await hello(socket)
        assert alice.post(thread_id, "Hello").status_code == 201
        await receive_until(socket, is_run_status("queued"))
    # The tab is closed; the server goes on and stores the answer.
    await wait_until(lambda: latest_run(site, thread_id)["status"] == "completed")
    assert len(assistant_messages(site, thread_id)) == 1


async def test_a_killed_server_is_replaced_and_the_answer_arrives_once(tmp_path):
    env = {"RUN_LEASE_SECONDS": "2"}
    with start_site(tmp_path, env=env, latency=3.0) as site:
        alice = SiteClient(site, "alice")
        thread_id = alice.start_thread()
        first_server = site.processes[-1]
        async with alice.websocket(thread_id) as socket:
            await hello(socket)
            user_message = alice.post(thread_id, "Hello").json()["message"]["id"]
            await receive_until(socket, is_run_status("in_progress"))
            first_server.send_signal(signal.SIGKILL)
            first_server.wait()

        port = int(site.url.rsplit(":", 1)[1])
        site.start_daphne(port=port)  # the same address, a new process: as after a restart
        async with alice.websocket(thread_id) as socket:
            await hello(socket, user_message)
            events = await receive_until(socket, is_run_status("completed"), timeout=20)

        assert len([e for e in events if is_assistant_message(e)]) == 1
        assert len(assistant_messages(site, thread_id)) == 1
        assert on_its_branch(site, thread_id)


async def test_a_stopped_server_hands_its_runs_to_the_worker(tmp_path):
    with start_site(tmp_path, latency=2.0) as site:
        site.start_worker()
        alice = SiteClient(site, "alice")
        thread_id = alice.start_thread()
        server = site.processes[-2]  # daphne; the worker was started after it
        async with alice.websocket(thread_id) as socket:
            await hello(socket)
            alice.post(thread_id, "Hello")
            await receive_until(socket, is_run_status("in_progress"))
            server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)  # a busy machine takes seconds to tear a process down

        # The lease (30 s) was released at exit, so the worker takes over at once.
        await wait_until(lambda: latest_run(site, thread_id)["status"] == "completed", 10)
        assert len(assistant_messages(site, thread_id)) == 1


async def test_two_tabs_on_one_thread_each_see_the_answer_once(site):
    alice = SiteClient(site, "alice")
    thread_id = alice.start_thread()
    async with alice.websocket(thread_id) as tab1, alice.websocket(thread_id) as tab2:
        await hello(tab1)
        await hello(tab2)
        alice.post(thread_id, "Hello from two tabs")
        seen = [await receive_until(tab, is_run_status("completed")) for tab in (tab1, tab2)]
    for events in seen:
        assert len([e for e in events if is_assistant_message(e)]) == 1


@pytest.fixture(scope="module")
def faulty_site(tmp_path_factory):
    env = {
        "RUN_MAX_SECONDS": "4",
        "PROVIDER_TIMEOUT_SECONDS": "0.5",
        "SIMULATOR_SLOW_SECONDS": "0.3",
        "SIMULATOR_STORM_SECONDS": "1",
    }
    with start_site(tmp_path_factory.mktemp("faults"), env=env, faults=FAULTS) as site:
        yield site


@pytest.mark.parametrize(
    "fault, status, error_code",
    [
        ("rate-limit-storm", "completed", ""),
        ("error-500-storm", "completed", ""),
        ("slow", "completed", ""),
        ("fail", "failed", "server_error"),
        ("stuck", "expired", "expired"),
        ("drop", "expired", "expired"),
    ],
)
async def test_each_provider_fault_ends_in_its_documented_state(
    faulty_site, fault, status, error_code
):
    alice = SiteClient(faulty_site, "alice")
    thread_id = alice.start_thread(f"Sim {fault}")
    async with alice.websocket(thread_id) as socket:
        await hello(socket)
        alice.post(thread_id, "Hello")
        events = await receive_until(
            socket, lambda e: e["type"] == "run.status" and e["run"]["is_terminal"], timeout=20
        )
    final = events[-1]["run"]
    assert (final["status"], final["error_code"]) == (status, error_code)
    if status != "completed":
        assert final["error_message"]  # a reason the page shows
    answers = assistant_messages(faulty_site, thread_id)
    assert len(answers) == (1 if status == "completed" else 0)


async def test_two_servers_on_postgres_and_redis_deliver_each_answer_once(tmp_path):
    with postgres_database(migrated=True) as database_url:
        env = {"DATABASE_URL": database_url, "REDIS_URL": "redis://127.0.0.1:6379/0"}
        with start_site(tmp_path, env=env, servers=2, latency=0.5) as site:
            first, second = site.urls
            alice = SiteClient(site, "alice", url=first)
            threads = [alice.start_thread() for _ in range(3)]
            for thread_id in threads:
                async with (
                    alice.websocket(thread_id, url=first) as tab1,
                    alice.websocket(thread_id, url=second) as tab2,
                ):
                    await hello(tab1)
                    await hello(tab2)
                    # Posted through one server; the other learns of it through Redis.
                    assert alice.post(thread_id, f"Hello {thread_id}").status_code == 201
                    for tab in (tab1, tab2):
                        events = await receive_until(tab, is_run_status("completed"))
                        assert len([e for e in events if is_assistant_message(e)]) == 1
                assert len(assistant_messages(site, thread_id)) == 1
                assert on_its_branch(site, thread_id)
