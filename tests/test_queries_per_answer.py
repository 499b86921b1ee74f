"""What an answer costs the database: the queries of sending a message and driving its run
to the stored answer. Every query is a round trip and about a millisecond of the process's
CPU (BENCHMARKS.md, "Cost per answer"); this fails when a change adds them unnoticed."""

import asyncio

import pytest
import respx
from asgiref.sync import SyncToAsync, sync_to_async
from django.db.backends.utils import CursorWrapper
from django.db.models.sql.compiler import SQLCompiler
from django.test import AsyncClient

from assistants_app import attached, config_cache, runs, services
from assistants_app.models import Message, Run, RunStatus

from .conftest import PROVIDER_URL
from .provider_payloads import conversation, response
from .sockets import communicator, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

# Statements of a follow-up on SQLite, with the fair-use limits on: 54 before "Cost per
# answer" (BENCHMARKS.md), 39 when this test was written, 37, then 31 with staff's settings
# kept per process (config_cache.py) and no lock of the user's row where SQLite has none, 28
# with an answer stored in one INSERT ... ON CONFLICT instead of a look, a savepoint, the
# insert and its release (Message.save_unless_stored), 26 with the start's status and the
# keeping of its lease in one UPDATE and a polled run's own stored messages known, not read.
FOLLOW_UP_BUDGET = 26

# Trips from the event loop to a thread to post a follow-up, its run started on the provider:
# 16, then 13 once the middleware read the user on its own thread (it took two trips from the
# view) and a send asked whether it may use the assistant in the trip that stores it; 11, then
# 7 with the thread looked up in the trip that stores the message, the sign-in and CSRF checks
# on the event loop (signed_in.py, middleware.py) and the start's lease kept as it is stored.
POST_HOPS = 7


@pytest.fixture
def queries(monkeypatch):
    """Every SQL statement any thread runs (the driver's database threads included)."""
    statements: list[str] = []
    execute, executemany = CursorWrapper.execute, CursorWrapper.executemany

    def counted(self, sql, *args, **kwargs):
        statements.append(sql)
        return execute(self, sql, *args, **kwargs)

    def counted_many(self, sql, *args, **kwargs):
        statements.append(sql)
        return executemany(self, sql, *args, **kwargs)

    monkeypatch.setattr(CursorWrapper, "execute", counted)
    monkeypatch.setattr(CursorWrapper, "executemany", counted_many)
    return statements


@pytest.fixture
def hops(monkeypatch):
    """Every trip from the event loop to a thread (asgiref's SyncToAsync: Django's async ORM,
    Channels' and our database calls, the request's middleware), by what it ran; not those of
    the drivers of runs, which go on in tasks of their own after a post has answered."""
    made: list[str] = []
    call = SyncToAsync.__call__

    def counted(self, *args, **kwargs):
        task = asyncio.current_task()
        if task is None or not task.get_name().startswith("drive-run-"):
            made.append(getattr(self.func, "__qualname__", None) or type(self.func).__name__)
        return call(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)
    return made


async def ask(alice, thread, text: str, queries: list[str]) -> int:
    """Send a message and drive its run to its end: the statements that took."""
    queries.clear()
    _, run = await services.submit_message(alice, thread, text)
    await runs.drive(run.pk)
    taken = len(queries)
    await run.arefresh_from_db()
    assert run.status == RunStatus.COMPLETED
    return taken


async def test_a_follow_up_answer_takes_a_bounded_number_of_queries(
    alice, alice_thread, queries, answering_provider
):
    await ask(alice, alice_thread, "Hello", queries)  # the first makes the conversation

    taken = await ask(alice, alice_thread, "And again", queries)

    assert await Message.objects.filter(thread=alice_thread).acount() == 4
    assert taken <= FOLLOW_UP_BUDGET, "\n".join(queries)


async def test_a_follow_up_post_takes_a_bounded_number_of_trips_to_threads(
    alice, alice_thread, hops
):
    client = AsyncClient()
    await client.aforce_login(alice)
    url = f"/threads/{alice_thread.pk}/messages/"
    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        provider.post("/conversations").respond(json=conversation())
        provider.post("/responses").respond(json=response("queued"))
        provider.get(url__regex=r"/responses/").respond(json=response("completed", text="Hi!"))
        first = await client.post(url, {"text": "Hello"}, "application/json")
        await runs.drive(first.json()["run"]["id"])

        hops.clear()
        answer = await client.post(url, {"text": "And again"}, "application/json")
        made = list(hops)
        await runs.drive(answer.json()["run"]["id"])

    assert answer.status_code == 201
    assert len(made) <= POST_HOPS, "\n".join(made)


# The same post over the thread's websocket (`message.send`): no request, so no request signal,
# middleware or response to close on threads, and the signed-in check is made in the trip that
# stores the message (consumers.py).
SOCKET_POST_HOPS = 4


async def test_a_follow_up_sent_over_the_socket_takes_fewer_trips_than_a_post(
    alice, alice_thread, hops
):
    cookie = await sync_to_async(session_cookie)(alice)
    socket = communicator(f"/ws/threads/{alice_thread.pk}/", cookie)
    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        provider.post("/conversations").respond(json=conversation())
        provider.post("/responses").respond(json=response("queued"))
        provider.get(url__regex=r"/responses/").respond(json=response("completed", text="Hi!"))
        assert (await socket.connect())[0]
        first = await send_over(socket, "Hello", "first")
        await runs.drive(first["run"]["id"])

        hops.clear()
        answer = await send_over(socket, "And again", "again")
        made = list(hops)
        await runs.drive(answer["run"]["id"])
        await socket.disconnect()

    assert answer["type"] == "message.sent"
    assert len(made) <= SOCKET_POST_HOPS < POST_HOPS, "\n".join(made)


async def send_over(socket, text: str, ref: str) -> dict:
    await socket.send_json_to({"type": "message.send", "ref": ref, "text": text})
    while (event := await socket.receive_json_from(timeout=5)).get("ref") != ref:
        pass
    return event


# Statements the ORM builds for a socket's connect and its first `hello`, once the process
# has connected one: 8, then 2 with the rest built once per process (prepared.py). The two
# left are Channels' lookup of the session's user and the replayed questions' attachments
# (a list of ids, different SQL each time).
CONNECT_BUILDS = 2


@pytest.fixture
def builds(monkeypatch):
    """Every statement the ORM builds (its compiler's SQL), by the first words of its SQL."""
    built: list[str] = []
    as_sql = SQLCompiler.as_sql

    def counted(self, *args, **kwargs):
        sql, params = as_sql(self, *args, **kwargs)
        built.append(sql[:120])
        return sql, params

    monkeypatch.setattr(SQLCompiler, "as_sql", counted)
    return built


async def test_a_connect_and_its_replay_build_few_statements(alice, alice_thread, builds):
    question = await Message.objects.acreate(thread=alice_thread, role="user", text="Hi")
    run = await Run.objects.acreate(thread=alice_thread, prompt=question, status="completed")
    await Message.objects.acreate(thread=alice_thread, role="assistant", text="Hello", run=run)
    cookie = await sync_to_async(session_cookie)(alice)

    await connect_and_replay(alice_thread, cookie)  # the process's first
    builds.clear()
    replayed = await connect_and_replay(alice_thread, cookie)

    assert [e["type"] for e in replayed] == ["message.created", "message.created", "run.status"]
    assert len(builds) <= CONNECT_BUILDS, "\n".join(builds)


# Trips from the event loop to a thread to let a socket in: 2, Channels' lookup of the
# session's user and the thread's, then 1 with both in one call (each trip is also a turn in
# the socket lane, where a burst of reconnects waits, assistants_app/db.py).
CONNECT_HOPS = 1


async def test_a_connect_takes_one_trip_to_a_database_thread(alice, alice_thread, hops):
    cookie = await sync_to_async(session_cookie)(alice)
    socket = communicator(f"/ws/threads/{alice_thread.pk}/", cookie)

    hops.clear()
    connected, _ = await socket.connect()
    made = list(hops)
    await socket.disconnect()

    assert connected
    assert len(made) == CONNECT_HOPS, "\n".join(made)


async def connect_and_replay(thread, cookie: str) -> list[dict]:
    socket = communicator(f"/ws/threads/{thread.pk}/", cookie)
    assert (await socket.connect())[0]
    await socket.send_json_to({"type": "hello", "last_message_id": None})
    replayed = [await socket.receive_json_from(timeout=5) for _ in range(3)]
    await socket.disconnect()
    return replayed


def compiles_counted(monkeypatch) -> list[str]:
    """The model of every query the ORM compiles from now on, an empty one's included (whose
    compile raises to say it is empty)."""
    compiled = []
    as_sql = SQLCompiler.as_sql

    def counted(self, *args, **kwargs):
        compiled.append(self.query.model.__name__)
        return as_sql(self, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", counted)
    return compiled


def test_a_message_sent_without_files_shows_none_without_building_a_statement(
    alice, alice_thread, monkeypatch
):
    """Its attachments are known to be none as it is stored: reading them builds no SQL, not
    even the empty queryset's (which compiles its query to find out it is empty)."""
    message, _ = services._store_message_and_run_now(alice, alice_thread, "Hi", [])
    compiled = compiles_counted(monkeypatch)

    assert attached.known_to_have_none(message)
    assert message.as_event()["attachments"] == []
    assert compiled == []


def test_a_send_reads_its_users_limits_groups_and_spending_without_building_statements(
    alice, alice_thread, monkeypatch
):
    """Staff's settings are kept a few seconds (config_cache.py): a user who sends less often
    than that has them read again on every send, and with the default limits every send counts
    the user's answers in flight and tokens today: all with statements built once. (What is
    kept per process, not per user, is read again once every few seconds at most.)"""
    services._store_message_and_run_now(alice, alice_thread, "Hi", [])  # builds what it builds
    Run.objects.filter(thread=alice_thread).update(status=RunStatus.COMPLETED)
    config_cache.clear_all()  # forgotten, as they are SECONDS later
    compiled = compiles_counted(monkeypatch)

    services._store_message_and_run_now(alice, alice_thread, "Hi again", [])

    assert set(compiled) <= {"GroupBudget", "AssistantVersion", "ModelPrice"}, compiled
