"""Database calls from async code (assistants_app/db.py): a socket's and a run's database work
leaves asgiref's one shared thread where the database allows it."""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import respx
from asgiref.sync import SyncToAsync, ThreadSensitiveContext, sync_to_async

from assistants_app import consumers, db, runs, services
from assistants_app.models import Message, Run, RunStatus

from .conftest import PROVIDER_URL
from .provider_payloads import RESPONSE_ID, response
from .sockets import communicator, session_cookie

# The helper opens and closes connections around each call, so every test needs the database.
pytestmark = pytest.mark.django_db(transaction=True)


def current_thread() -> int:
    return threading.get_ident()


async def shared_thread() -> int:
    """The thread a call outside any request lands on: asgiref's one per process."""
    return await sync_to_async(current_thread)()


async def test_without_database_threads_calls_stay_on_the_shared_thread(settings):
    settings.DATABASE_THREADS = 0  # SQLite's setting: it locks under concurrent writers
    assert await db.database_sync_to_async(current_thread)() == await shared_thread()


async def test_with_database_threads_calls_run_side_by_side_off_the_shared_thread(settings):
    settings.DATABASE_THREADS = 4
    # Each call waits until all four are in: on one thread the first would wait forever.
    everyone_in = threading.Barrier(4, timeout=5)

    def meet() -> int:
        everyone_in.wait()
        return current_thread()

    threads = await asyncio.gather(*(db.database_sync_to_async(meet)() for _ in range(4)))
    assert len(set(threads)) == 4
    assert await shared_thread() not in threads


async def test_a_request_keeps_its_own_thread(settings):
    """An HTTP request already has a thread of its own (and a test's transaction lives on
    the calling thread): calls made in one stay there."""
    settings.DATABASE_THREADS = 4
    async with ThreadSensitiveContext():
        requests_thread = await sync_to_async(current_thread)()
        assert await db.database_sync_to_async(current_thread)() == requests_thread
    assert requests_thread != await shared_thread()


def handed_back(monkeypatch) -> list:
    """Records each time a database thread hands its connection back (to the pool, or closes
    it without one)."""
    handed = []
    close = db.close_old_connections

    def recording_close():
        handed.append(current_thread())
        close()

    monkeypatch.setattr(db, "close_old_connections", recording_close)
    return handed


async def two_calls_in_a_row():
    """Two database calls given at once to one thread, so that the second waits."""
    second_is_waiting = threading.Event()

    def first() -> None:
        from django.db import connection

        connection.ensure_connection()
        second_is_waiting.wait(5)

    def second() -> None:
        from django.db import connection

        connection.ensure_connection()

    async def let_first_finish():
        await asyncio.sleep(0.2)  # the second call is queued by now
        second_is_waiting.set()

    call = db.database_sync_to_async
    await asyncio.gather(call(first)(), call(second)(), let_first_finish())


async def test_a_database_thread_keeps_its_connection_while_calls_wait(settings, monkeypatch):
    settings.DATABASE_THREADS = 1
    handed = handed_back(monkeypatch)

    await two_calls_in_a_row()

    # Looked at before the first call, then handed on to the second instead of back to the
    # pool and out again (a health check each), and handed back when no call waited.
    assert len(handed) == 2


async def test_a_kept_connection_is_handed_back_once_it_sat_unused(settings, monkeypatch):
    settings.DATABASE_THREADS = 1
    monkeypatch.setattr(db, "KEEP_SECONDS", 0.0)  # any wait is too long
    handed = handed_back(monkeypatch)

    await two_calls_in_a_row()

    # Kept after the first call, but stale for the second: taken out of the pool again.
    assert len(handed) == 3


async def test_without_calls_waiting_each_call_hands_its_connection_back(settings, monkeypatch):
    settings.DATABASE_THREADS = 1
    handed = handed_back(monkeypatch)

    for _ in range(2):
        await db.database_sync_to_async(connection_is_open)()

    assert len(handed) == 4


def connection_is_open() -> bool:
    from django.db import connection

    return connection.connection is not None


class RecordingExecutor(ThreadPoolExecutor):
    """Stands in for asgiref's shared thread and notes what runs on it."""

    def __init__(self):
        super().__init__(max_workers=1)
        self.calls: list[str] = []

    def submit(self, fn, *args, **kwargs):
        child = fn.args[-1] if hasattr(fn, "args") else fn  # SyncToAsync's bound call
        self.calls.append(getattr(getattr(child, "func", child), "__qualname__", repr(child)))
        return super().submit(fn, *args, **kwargs)


async def test_a_socket_and_its_run_never_wait_for_the_shared_thread(
    alice, alice_thread, settings, monkeypatch
):
    """The hot path with database threads (PostgreSQL's default): a socket's login, thread
    lookup, socket count, the run it drives to the end, its `hello` replay and its close."""
    settings.DATABASE_THREADS = 2
    cookie = await sync_to_async(session_cookie)(alice)
    prompt = await Message.objects.acreate(thread=alice_thread, role="user", text="Hi")
    run = await Run.objects.acreate(
        thread=alice_thread, prompt=prompt, remote_id=RESPONSE_ID, status=RunStatus.QUEUED
    )
    shared = RecordingExecutor()
    monkeypatch.setattr(SyncToAsync, "single_thread_executor", shared)

    with respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=True) as provider:
        provider.get(f"/responses/{RESPONSE_ID}").respond(json=response("completed", text="Hi!"))
        socket = communicator(f"/ws/threads/{alice_thread.pk}/", cookie)
        assert (await socket.connect())[0]
        events = [await socket.receive_json_from(timeout=5) for _ in range(2)]
        async with asyncio.timeout(5):
            while run.pk in runs._driving:  # the driver releases its lease last
                await asyncio.sleep(0.01)
    await socket.send_json_to({"type": "hello", "last_message_id": prompt.pk})
    replayed = await socket.receive_json_from(timeout=5)
    await socket.disconnect()

    assert [e["type"] for e in events] == ["message.created", "run.status"]
    assert replayed["type"] == "message.created"
    assert shared.calls == []


class Blocking:
    """Stands in for a database lookup of a socket's: each call holds its database thread
    until `release` is set, then for `pause` seconds more, and the most held at once is
    noted."""

    def __init__(self, lookup, pause: float = 0.0):
        self.lookup, self.pause = lookup, pause
        self.release = threading.Event()
        self.held = self.most_held = 0
        self._counting = threading.Lock()

    def __call__(self, *args, **kwargs):
        with self._counting:
            self.held += 1
            self.most_held = max(self.most_held, self.held)
        try:
            self.release.wait(10)
            time.sleep(self.pause)
            return self.lookup(*args, **kwargs)
        finally:
            with self._counting:
                self.held -= 1


async def connect_all(sockets) -> list[bool]:
    return [connected for connected, _ in await asyncio.gather(*(s.connect() for s in sockets))]


async def test_a_burst_of_connects_leaves_database_threads_to_the_runs(
    alice, alice_thread, settings, monkeypatch
):
    """Ten sockets connect at once while their lookups are slow: they take one database
    thread at a time between them (DATABASE_SOCKET_CALLS), so a run's call made meanwhile
    runs at once on another, instead of queueing behind all ten."""
    settings.DATABASE_THREADS = 2
    settings.DATABASE_SOCKET_CALLS = 1
    lookups = Blocking(services.thread_of)
    monkeypatch.setattr(services, "thread_of", lookups)
    cookie = await sync_to_async(session_cookie)(alice)
    sockets = [communicator(f"/ws/threads/{alice_thread.pk}/", cookie) for _ in range(10)]
    connecting = asyncio.ensure_future(connect_all(sockets))
    async with asyncio.timeout(5):
        while not lookups.held:  # the first socket is in its lookup
            await asyncio.sleep(0.01)

    async with asyncio.timeout(5):  # on the threads both held by sockets: never
        statuses = await db.database_sync_to_async(run_statuses)(alice_thread.pk)
    lookups.release.set()
    async with asyncio.timeout(10):
        connected = await connecting

    assert statuses == []
    assert connected == [True] * 10
    assert lookups.most_held == 1
    for socket in sockets:
        await socket.disconnect()


def run_statuses(thread_id: int) -> list[str]:
    return list(Run.objects.filter(thread_id=thread_id).values_list("status", flat=True))


async def test_connects_and_replays_past_the_socket_lane_wait_their_turn_and_all_get_in(
    alice, alice_thread, settings, monkeypatch
):
    settings.DATABASE_THREADS = 4
    settings.DATABASE_SOCKET_CALLS = 2
    await Message.objects.acreate(thread=alice_thread, role="user", text="Hi")
    lookups = Blocking(services.thread_of, pause=0.05)
    replays = Blocking(consumers._sizes_after, pause=0.05)
    lookups.release.set()
    replays.release.set()
    monkeypatch.setattr(services, "thread_of", lookups)
    monkeypatch.setattr(consumers, "_sizes_after", replays)
    cookie = await sync_to_async(session_cookie)(alice)
    sockets = [communicator(f"/ws/threads/{alice_thread.pk}/", cookie) for _ in range(12)]

    async with asyncio.timeout(10):
        connected = await connect_all(sockets)
        await asyncio.gather(*(s.send_json_to({"type": "hello"}) for s in sockets))
        replayed = [await socket.receive_json_from(timeout=5) for socket in sockets]

    assert connected == [True] * 12
    assert [event["message"]["text"] for event in replayed] == ["Hi"] * 12
    assert lookups.most_held == 2  # of four threads
    assert replays.most_held == 2
    for socket in sockets:
        await socket.disconnect()


async def test_a_connect_gets_in_while_every_database_thread_is_busy_with_runs(
    alice, alice_thread, settings
):
    """A socket's calls run on threads of their own: a reconnect does not wait for the runs'
    database work to leave a thread, however long it takes."""
    settings.DATABASE_THREADS = 2
    settings.DATABASE_SOCKET_CALLS = 1
    runs_work = Blocking(lambda: None)
    busy = [asyncio.ensure_future(db.database_sync_to_async(runs_work)()) for _ in range(2)]
    cookie = await sync_to_async(session_cookie)(alice)
    socket = communicator(f"/ws/threads/{alice_thread.pk}/", cookie)
    try:
        async with asyncio.timeout(5):
            while runs_work.held < 2:  # both database threads are taken
                await asyncio.sleep(0.01)
            connected, _ = await socket.connect(timeout=5)
    finally:
        runs_work.release.set()
        await asyncio.gather(*busy)

    assert connected
    assert runs_work.held == 0
    await socket.disconnect()


async def test_in_a_burst_each_page_let_in_gets_its_replay_before_later_pages_are_let_in(
    alice, alice_thread, settings, monkeypatch
):
    """A socket's later calls go before the first calls of sockets that came after it: pages
    are let in and sent their replay in turn, so none waits for the whole burst to be let in
    before it is sent what it missed (nor does a page that comes just after the burst). (In
    turn past the calls let through to the threads ahead, SOCKET_CALLS_AHEAD a thread.)"""
    settings.DATABASE_THREADS = 2
    settings.DATABASE_SOCKET_CALLS = 1
    await Message.objects.acreate(thread=alice_thread, role="user", text="Hi")
    lookups = Blocking(services.thread_of, pause=0.02)
    lookups.release.set()
    monkeypatch.setattr(services, "thread_of", lookups)
    cookie = await sync_to_async(session_cookie)(alice)
    burst = db.SOCKET_CALLS_AHEAD + 4
    sockets = [communicator(f"/ws/threads/{alice_thread.pk}/", cookie) for _ in range(burst)]
    moments = []

    async def open_and_catch_up(index, socket):
        assert (await socket.connect(timeout=10))[0]
        moments.append(("let in", index))
        await socket.send_json_to({"type": "hello"})
        assert (await socket.receive_json_from(timeout=10))["message"]["text"] == "Hi"
        moments.append(("replayed", index))

    async with asyncio.timeout(15):
        await asyncio.gather(*(open_and_catch_up(i, s) for i, s in enumerate(sockets)))

    assert moments.index(("replayed", 0)) < moments.index(("let in", burst - 1))
    for socket in sockets:
        await socket.disconnect()


async def test_a_socket_thread_goes_on_to_its_next_call_while_the_event_loop_is_busy(settings):
    """At saturation a turn of the event loop takes about 100 ms: a thread of the socket lane
    that finishes a call starts the next one waiting without that turn in between."""
    settings.DATABASE_THREADS = 2
    settings.DATABASE_SOCKET_CALLS = 1
    first_may_end = threading.Event()
    started: dict[str, float] = {}

    def call(name: str) -> str:
        started[name] = time.monotonic()
        if name == "first":
            first_may_end.wait(5)
        return name

    lookup = db.socket_database_call(call)
    calls = [asyncio.ensure_future(lookup(name)) for name in ("first", "second")]
    async with asyncio.timeout(5):
        while "first" not in started:
            await asyncio.sleep(0.01)
    first_may_end.set()
    time.sleep(0.3)  # the event loop is busy: no callback of it runs meanwhile
    loop_free_again = time.monotonic()

    assert await asyncio.gather(*calls) == ["first", "second"]
    assert started["second"] < loop_free_again


async def test_a_call_that_stops_waiting_in_the_socket_lane_gives_its_turn_to_the_next():
    lane = db._Lane(1)
    first_in, first_may_go = asyncio.Event(), asyncio.Event()

    async def call(opens_socket: bool, then=None):
        async with lane.place(opens_socket):
            if then:
                await then()

    async def hold():
        first_in.set()
        await first_may_go.wait()

    first = asyncio.ensure_future(call(False, hold))
    await first_in.wait()
    leaving = asyncio.ensure_future(call(True))
    staying = asyncio.ensure_future(call(True))
    await asyncio.sleep(0)
    leaving.cancel()
    first_may_go.set()
    async with asyncio.timeout(2):
        await asyncio.gather(first, staying)

    assert leaving.cancelled()
    assert lane.free == 1
    assert not any(lane.waiting)
