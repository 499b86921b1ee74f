"""Database calls from async code, without queueing every socket of a process behind one thread.

Channels' `database_sync_to_async` (and Django's async ORM) runs a call outside an HTTP
request on asgiref's one thread per process: every websocket connect, replay and run update
of the process waits its turn there (BENCHMARKS.md measured 38 % of a loaded process in it).
`database_sync_to_async` below keeps Channels' contract (a sync function becomes awaitable;
stale connections are closed around each call) but, on PostgreSQL, runs such calls on a pool
of `DATABASE_THREADS` threads, each call taking a connection from Django's connection pool.
While more calls wait, a thread hands its connection on to its next call instead of back to
the pool, where taking it out again costs a health check, a round trip to PostgreSQL, each
time (`_PooledSyncToAsync`).

A socket's calls (its login, its thread, its `hello` replay) take a place in the socket lane
first (`socket_database_call`): at most `DATABASE_SOCKET_CALLS` of them at once per process.
A burst of reconnects (a network blip, a restart behind a load balancer) is hundreds of such
calls at once; in the threads' queue they would put every run's database call behind them all,
and on the threads they would take the GIL from the event loop that streams every answer (each
running thread a share of it). In the lane they wait their turn as coroutines, which costs
nothing, and run on threads of their own, `DATABASE_SOCKET_CALLS` of them: a run's call never
waits behind a socket's, nor a socket's behind the runs' (BENCHMARKS.md, eleventh step). A few
calls per thread are let through ahead (`SOCKET_CALLS_AHEAD`), so that a thread goes from one
call to the next without waiting for a loaded event loop in between (twelfth step).

It uses Channels' own `DatabaseSyncToAsync` where moving would be unsafe or gain nothing:
- with `DATABASE_THREADS = 0`, the default on SQLite, where writers take turns at one lock;
- inside an HTTP request, where asgiref already gives the request a thread of its own (and a
  test's transaction lives on the calling thread, so its data stays visible).

On SQLite a writer waits for the lock up to the busy timeout (chatsite/settings.py). A call
that SQLite still refuses as busy is tried again a few times, after a pause that leaves the
thread to other calls: every function given here is a read, one statement or one transaction,
and a busy database refuses such a call whole (an immediate transaction asks for the lock at
BEGIN, before it has done anything).
"""

import asyncio
import collections
import contextlib
import logging
import random
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import AsyncToSync, SyncToAsync, markcoroutinefunction
from channels.db import DatabaseSyncToAsync
from django.conf import settings
from django.db import OperationalError, close_old_connections, connections

log = logging.getLogger(__name__)

BUSY_ATTEMPTS = 4  # tries in all of a call that SQLite refuses as busy
# Calls the socket lane lets go to its threads at once, per thread: those past the first wait
# in the threads' queue, so that a thread that finishes a call starts the next at once rather
# than a turn of the event loop later (the finished call's turn, then the next call's). At
# saturation a turn takes about 100 ms and a call a few: one call per thread at a time, 100
# reconnects took 15 to 21 s (BENCHMARKS.md, twelfth step). The threads still run at most
# DATABASE_SOCKET_CALLS at once: they are that many.
SOCKET_CALLS_AHEAD = 8
KEEP_SECONDS = 1.0
_thread = threading.local()  # per database thread: when it kept its connection
_executors: dict[str, ThreadPoolExecutor] = {}  # the database threads, and the sockets'
_executors_lock = threading.Lock()


def database_sync_to_async(func):
    """Decorator: `func`, a sync function that uses the database, as a coroutine function."""
    return _DatabaseCall(func)


def socket_database_call(func=None, *, opens_socket: bool = False):
    """`database_sync_to_async` for a socket's connect and replay: one of at most
    `DATABASE_SOCKET_CALLS` such calls at once per process (the socket lane, above). The call
    that `opens_socket` (its first; as `@socket_database_call(opens_socket=True)`) waits
    behind the later calls of sockets already opened."""
    if func is None:
        return lambda func: socket_database_call(func, opens_socket=opens_socket)
    return _DatabaseCall(func, lane=lambda: _socket_lane().place(opens_socket))


class _Lane:
    """At most `size` calls at once on one event loop; the rest wait as coroutines, in order,
    a socket's later calls before the first calls of sockets that came after it. In a burst of
    a thousand connects each page is then let in and sent its replay in turn, instead of every
    page let in first and all the replays after (which a page that connects just after the
    burst would wait behind, BENCHMARKS.md)."""

    def __init__(self, size: int):
        self.size = self.free = size
        self.waiting = (collections.deque(), collections.deque())  # sockets' later, first calls

    @contextlib.asynccontextmanager
    async def place(self, opens_socket: bool):
        if self.free and not any(self.waiting):
            self.free -= 1
        else:
            turn = asyncio.get_running_loop().create_future()
            queue = self.waiting[opens_socket]
            queue.append(turn)
            try:
                await turn  # done when a call leaving the lane hands its place on
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():  # handed a place as it was cancelled
                    self._leave()
                elif turn in queue:
                    queue.remove(turn)
                raise
        try:
            yield
        finally:
            self._leave()

    def _leave(self) -> None:
        for queue in self.waiting:
            while queue:
                turn = queue.popleft()
                if not turn.done():  # (one cancelled is on its way out)
                    turn.set_result(None)  # the place goes to the next in line
                    return
        self.free += 1


_socket_lanes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> _Lane


def _socket_lane() -> _Lane:
    """This event loop's socket lane (made anew when the setting changes, as tests change it)."""
    loop, size = asyncio.get_running_loop(), settings.DATABASE_SOCKET_CALLS * SOCKET_CALLS_AHEAD
    lane = _socket_lanes.get(loop)
    if lane is None or lane.size != size:
        lane = _socket_lanes[loop] = _Lane(size)
    return lane


class _DatabaseCall:
    def __init__(self, func, lane=None):
        self.func = func
        self._lane = lane
        self.__name__ = getattr(func, "__name__", repr(func))
        self.__doc__ = func.__doc__
        self.__wrapped__ = func
        markcoroutinefunction(self)
        self._on_calling_thread = DatabaseSyncToAsync(func)  # Channels' own
        self._pooled: _PooledSyncToAsync | None = None

    async def __call__(self, *args, **kwargs):
        for attempt in range(1, BUSY_ATTEMPTS + 1):
            try:
                if self._lane is None:
                    return await self._call(*args, **kwargs)
                async with self._lane():  # given back while a busy database is waited out
                    return await self._call(*args, **kwargs)
            except OperationalError as error:
                if not is_busy(error) or attempt == BUSY_ATTEMPTS:
                    raise
                log.warning("database busy in %s (try %s); trying again", self.__name__, attempt)
                await asyncio.sleep(random.uniform(0.05, 0.25) * attempt)

    async def _call(self, *args, **kwargs):
        threads = settings.DATABASE_THREADS
        if not threads or _has_thread_of_its_own():
            return await self._on_calling_thread(*args, **kwargs)
        if self._lane is None:
            executor = _pool(threads)
        else:  # threads of the socket lane's own, DATABASE_SOCKET_CALLS of them
            executor = _pool(settings.DATABASE_SOCKET_CALLS, "socket-database")
        if self._pooled is None or self._pooled._executor is not executor:
            self._pooled = _PooledSyncToAsync(self.func, thread_sensitive=False, executor=executor)
        return await self._pooled(*args, **kwargs)


class _PooledSyncToAsync(SyncToAsync):
    """A call on one of the database threads. While other calls wait, the thread keeps its
    pooled connection for the next one instead of handing it back and taking it out again,
    which costs the pool's health check (a round trip to PostgreSQL) each time. A connection
    kept is handed back, and so checked when next taken, once it has sat unused for
    KEEP_SECONDS or had an error, and whenever no call waits."""

    def thread_handler(self, loop, *args, **kwargs):
        kept = getattr(_thread, "kept_at", None)
        if kept is None or time.monotonic() - kept > KEEP_SECONDS or _has_errors():
            close_old_connections()
        _thread.kept_at = None
        try:
            return super().thread_handler(loop, *args, **kwargs)
        finally:
            if self._executor.others_waiting() and not _has_errors():
                _thread.kept_at = time.monotonic()
            else:
                close_old_connections()


def is_busy(error: Exception) -> bool:
    """Whether SQLite refused a statement because another connection held the lock (and kept
    it past the busy timeout), as opposed to a statement that cannot succeed."""
    text = str(error)
    return isinstance(error, OperationalError) and (
        "database is locked" in text or "database table is locked" in text
    )


def _has_errors() -> bool:
    return any(c.errors_occurred for c in connections.all(initialized_only=True))


def _has_thread_of_its_own() -> bool:
    """Whether a thread-sensitive call made here would run on a thread of the caller's own
    (an HTTP request's, or a sync caller's above async_to_sync) rather than the shared one.
    Mirrors the order in which asgiref's SyncToAsync picks its executor."""
    return bool(
        getattr(AsyncToSync.executors, "current", None)
        or SyncToAsync.thread_sensitive_context.get(None)
        or asyncio.get_running_loop() in AsyncToSync.loop_thread_executors
    )


class _DatabaseThreads(ThreadPoolExecutor):
    """The database threads, counting the calls given to them and not done yet."""

    def __init__(self, max_workers: int, **kwargs):
        super().__init__(max_workers=max_workers, **kwargs)
        self.threads = max_workers
        self._not_done = 0
        self._counting = threading.Lock()

    def submit(self, fn, /, *args, **kwargs):
        self._count(+1)
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._count(-1)
            raise
        future.add_done_callback(lambda _: self._count(-1))  # also when cancelled unstarted
        return future

    def _count(self, change: int) -> None:
        with self._counting:
            self._not_done += change

    def others_waiting(self) -> bool:
        """Asked from a call on one of the threads: whether other calls are given and not
        done (the asking call is not done yet either)."""
        return self._not_done > 1


def _pool(threads: int, name: str = "database") -> ThreadPoolExecutor:
    """The process's database threads of that name, made on first use (and again if the
    setting changes, as tests change it)."""
    with _executors_lock:
        executor = _executors.get(name)
        if executor is None or executor.threads != threads:
            if executor is not None:
                executor.shutdown(wait=False)
            executor = _executors[name] = _DatabaseThreads(
                max_workers=threads, thread_name_prefix=name
            )
        return executor
