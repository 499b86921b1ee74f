"""Fair use: per-user limits on messages, concurrent runs, tokens per day and open sockets.

Counters live in the cache, which every process shares when REDIS_URL is set. They are fixed
windows aligned to the clock: `cache.add` creates a window's key with its expiry and
`cache.incr` counts atomically (Redis INCR; LocMem under a lock), so two processes never both
take the last slot. A fixed window may let up to twice the rate through across a window
boundary; for fair use that is fine and costs one round trip per check.
"""

import asyncio
import atexit
import hashlib
import logging
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from datetime import datetime

import redis
import redis.asyncio
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.utils import timezone

from . import budgets, prepared, usage
from .config_cache import ConfigCache
from .exceptions import RateLimited
from .models import Run, UsageLimit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """One user's limits; 0 means no limit."""

    messages_per_minute: int
    concurrent_runs: int
    daily_token_budget: int


_overrides = ConfigCache("usage-limits", models=[UsageLimit])


def limits_for(user) -> Limits:
    """The site's defaults, overridden field by field by the user's UsageLimit in admin."""
    override = _overrides.get(user.pk, lambda: next(iter(_override_of(user_id=user.pk)), None))

    def pick(name: str) -> int:
        value = getattr(override, name, None)
        return getattr(settings, name.upper()) if value is None else value

    return Limits(
        messages_per_minute=pick("messages_per_minute"),
        concurrent_runs=pick("concurrent_runs"),
        daily_token_budget=pick("daily_token_budget"),
    )


@prepared.select
def _active_runs_of(owner_id: int):
    # Read on every send while a user's concurrent runs are limited (the default): their ids,
    # a few at most, with a statement built once (prepared.py).
    return Run.objects.filter(thread__owner_id=owner_id).active().values_list("pk", flat=True)


@prepared.select
def _override_of(user_id: int):
    # Built once (prepared.py): read on a user's send whenever _overrides has forgotten it.
    return UsageLimit.objects.filter(user_id=user_id).order_by("pk")[:1]


def start_of_today() -> datetime:
    return timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)  # now() is UTC


def tokens_used_today(user) -> int:
    """Tokens charged to the user since midnight UTC: what finished runs spent and estimates
    for runs in flight, deleted threads' included (the usage ledger)."""
    return usage.tokens_charged(user, start_of_today())


def check_can_start_run(user) -> str | None:
    """Raise RateLimited if the user may not start another run now.

    Call inside the transaction that creates the run, after locking the user's row, so two
    requests of one user cannot both take the last concurrent slot. The message counter is
    counted last: a message refused for another reason does not use up the minute. Returns the
    place taken in that counter (None: no limit), to give back if the run is then not stored.
    """
    limits = limits_for(user)
    if limits.concurrent_runs:
        active = len(_active_runs_of(owner_id=user.pk))
        if active >= limits.concurrent_runs:
            raise RateLimited(
                "TOO_MANY_RUNS",
                f"You already have {active} answers in progress, the most allowed at once. "
                "Wait for one to finish, then send again; your message is still here.",
            )
    if limits.daily_token_budget and tokens_used_today(user) >= limits.daily_token_budget:
        raise RateLimited(
            "TOKEN_BUDGET_SPENT",
            f"You have used today's budget of {limits.daily_token_budget} tokens. It renews "
            "at midnight UTC; your message is still here.",
            retry_after=seconds_until_tomorrow(),
        )
    budgets.check(user)
    if not limits.messages_per_minute:
        return None
    place = reserve_in_window(f"messages:{user.pk}", 60, limits.messages_per_minute)
    if place is None:
        raise RateLimited(
            "TOO_MANY_MESSAGES",
            f"You can send {limits.messages_per_minute} messages a minute. Wait a "
            "moment, then send again; your message is still here.",
            retry_after=seconds_left_in_window(60),
        )
    return place


def seconds_until_tomorrow() -> int:
    return int(86_400 - (timezone.now() - start_of_today()).total_seconds()) + 1


# --- Counters ---------------------------------------------------------------------------


def count_in_window(name: str, window: int) -> int:
    """Count one event in the current `window`-second window; return the window's count."""
    return increment(_window_key(name, window), window)


def reserve_in_window(name: str, window: int, limit: int) -> str | None:
    """Take one of the `limit` places of the current window: the counter's key, to give back
    if what it was taken for does not happen; None (nothing taken) when the window is full.
    Atomic, so parallel requests never share the last place."""
    key = _window_key(name, window)
    if increment(key, window) > limit:
        give_back(key)
        return None
    return key


def give_back(key: str) -> None:
    """Return a place taken by reserve_in_window()."""
    try:
        cache.decr(key)
    except ValueError:  # the window ended meanwhile: nothing left to give back to
        pass


def peek_window(name: str, window: int) -> int:
    """The current window's count, without counting anything."""
    return cache.get(_window_key(name, window), 0)


def seconds_left_in_window(window: int) -> int:
    return window - int(time.time()) % window


def _window_key(name: str, window: int) -> str:
    return f"limit:{name}:{int(time.time()) // window}"


def increment(key: str, timeout: int) -> int:
    """Add one to a counter that is created with a `timeout`-second expiry; return it."""
    if cache.add(key, 1, timeout=timeout):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # it expired between the two calls: this is the first of a new one
        cache.add(key, 1, timeout=timeout)
        return 1


def private_name(*parts: str) -> str:
    """A cache-safe name for values a key must not reveal (usernames, addresses)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


# --- Open websockets ------------------------------------------------------------------
#
# Each open socket is an entry in its user's set with an expiry, not a number added to and
# taken from: a count cannot drift when a socket ends without saying so. The consumer takes
# its entry out however it ends (assistants_app/consumers.py), and a heartbeat of the process
# that holds the socket keeps pushing the expiry forward, so the entries of a process that
# died (SIGKILL, a crash) lapse within SOCKET_TTL_SECONDS. Refused connects add nothing and
# renew nothing.
#
# With Redis the set is a sorted set scored by expiry, changed by Lua scripts on Redis' own
# clock (atomic across processes) through redis' asyncio client, with no thread hop on every
# connect. Otherwise it is a dict in this process's memory cache, changed under a lock.

# How long a socket's entry lasts unless its process renews it, and how often it does.
SOCKET_TTL_SECONDS = 60
SOCKET_HEARTBEAT_SECONDS = 20
# Connections to Redis for the socket counts, per process: a count takes well under a
# millisecond of one, so a few dozen serve a burst of thousands of connects.
REDIS_CONNECTIONS = 32

# socket id -> user id: the sockets this process holds, renewed by its heartbeat.
_held_here: dict[str, int] = {}
_memory_lock = threading.Lock()

_JOIN = """
local clock = redis.call('time')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[3])
if limit > 0 and redis.call('zcard', KEYS[1]) >= limit then return 0 end
redis.call('zadd', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('pexpire', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000))
return 1
"""
# Only entries still there: a socket taken out meanwhile is not brought back.
_RENEW = """
local clock = redis.call('time')
local expiry = tonumber(clock[1]) + tonumber(clock[2]) / 1000000 + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('zadd', KEYS[1], 'XX', expiry, ARGV[i]) end
if redis.call('exists', KEYS[1]) == 1 then
  redis.call('pexpire', KEYS[1], math.ceil(tonumber(ARGV[1]) * 1000))
end
return 0
"""
# event loop -> its redis client, and its heartbeat task: both belong to the loop.
_redis_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, object]" = (
    weakref.WeakKeyDictionary()
)
_heartbeats: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task]" = (
    weakref.WeakKeyDictionary()
)


async def open_socket(user) -> str | None:
    """Count a new socket of the user: its id, to close it with; None when over the limit."""
    socket_id = uuid.uuid4().hex
    limit = settings.WEBSOCKETS_PER_USER
    if _uses_redis():
        script = _redis_client().register_script(_JOIN)
        args = [socket_id, SOCKET_TTL_SECONDS, limit]
        joined = await script(keys=[_full_socket_key(user.pk)], args=args)
    else:
        joined = _join_in_memory(user.pk, socket_id, limit)
    if not joined:
        return None
    _held_here[socket_id] = user.pk
    _ensure_heartbeat()
    return socket_id


async def close_socket(socket_id: str) -> None:
    """Take a socket out of its user's count; closing one twice is harmless."""
    user_id = _held_here.pop(socket_id, None)
    if user_id is None:
        return
    if not _held_here:
        _stop_heartbeat()
    if _uses_redis():
        await _redis_client().zrem(_full_socket_key(user_id), socket_id)
    else:
        _leave_in_memory(user_id, [socket_id])


@atexit.register
def close_all_sockets() -> None:
    """On a clean exit (daphne's SIGTERM included) take this process's sockets out of the
    counts at once, rather than leave them to lapse: a restart must not lock people out."""
    held = _by_user(_held_here)
    _held_here.clear()
    try:
        if _uses_redis():
            with redis.Redis.from_url(_redis_url()) as server:
                for user_id, socket_ids in held.items():
                    server.zrem(_full_socket_key(user_id), *socket_ids)
        else:
            for user_id, socket_ids in held.items():
                _leave_in_memory(user_id, socket_ids)
    except Exception:  # the cache may be gone at exit; the entries lapse on their own
        log.warning("could not take this process's sockets out of the counts at exit")


async def renew_sockets() -> None:
    """Push the expiry of every socket this process holds forward (the heartbeat's beat)."""
    held = _by_user(_held_here)
    if _uses_redis():
        script = _redis_client().register_script(_RENEW)
        async with _redis_client().pipeline(transaction=False) as pipe:
            for user_id, socket_ids in held.items():
                keys = [_full_socket_key(user_id)]
                await script(keys=keys, args=[SOCKET_TTL_SECONDS, *socket_ids], client=pipe)
            await pipe.execute()
        return
    with _memory_lock:
        expiry = time.time() + SOCKET_TTL_SECONDS
        for user_id, socket_ids in held.items():
            entries = cache.get(_socket_key(user_id), {})
            entries.update({s: expiry for s in socket_ids if s in entries})
            cache.set(_socket_key(user_id), entries, SOCKET_TTL_SECONDS)


def _ensure_heartbeat() -> None:
    loop = asyncio.get_running_loop()
    task = _heartbeats.get(loop)
    if task is None or task.done():
        _heartbeats[loop] = loop.create_task(_heartbeat())


def _stop_heartbeat() -> None:
    # Cancelled when the last socket closes, so no task outlives its sockets (or its loop).
    task = _heartbeats.pop(asyncio.get_running_loop(), None)
    if task is not None:
        task.cancel()


async def _heartbeat() -> None:
    while _held_here:
        await asyncio.sleep(SOCKET_HEARTBEAT_SECONDS)
        try:
            await renew_sockets()
        except Exception:  # the next beat tries again; entries last three beats
            log.exception("could not renew this process's socket counts")


def _join_in_memory(user_id: int, socket_id: str, limit: int) -> bool:
    key = _socket_key(user_id)
    with _memory_lock:
        now = time.time()
        entries = {s: expiry for s, expiry in cache.get(key, {}).items() if expiry > now}
        joined = not limit or len(entries) < limit
        if joined:
            entries[socket_id] = now + SOCKET_TTL_SECONDS
        cache.set(key, entries, SOCKET_TTL_SECONDS)
        return joined


def _leave_in_memory(user_id: int, socket_ids: list[str]) -> None:
    key = _socket_key(user_id)
    with _memory_lock:
        entries = cache.get(key, {})
        for socket_id in socket_ids:
            entries.pop(socket_id, None)
        cache.set(key, entries, SOCKET_TTL_SECONDS)


def _by_user(held: dict[str, int]) -> dict[int, list[str]]:
    by_user: dict[int, list[str]] = {}
    for socket_id, user_id in held.items():
        by_user.setdefault(user_id, []).append(socket_id)
    return by_user


def _uses_redis() -> bool:
    return isinstance(caches["default"], RedisCache)


def _redis_url() -> str:
    location = settings.CACHES["default"]["LOCATION"]
    return location if isinstance(location, str) else location[0]


def _redis_client():
    loop = asyncio.get_running_loop()
    client = _redis_clients.get(loop)
    if client is None:
        # Blocking: a connect burst waits for a free connection instead of failing.
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            _redis_url(), max_connections=REDIS_CONNECTIONS, timeout=30
        )
        client = _redis_clients[loop] = redis.asyncio.Redis(connection_pool=pool)
    return client


def _socket_key(user_id: int) -> str:
    return f"sockets:{user_id}"


def _full_socket_key(user_id: int) -> str:
    """The key as Redis knows it: the cache's prefix and version included."""
    return cache.make_and_validate_key(_socket_key(user_id))
