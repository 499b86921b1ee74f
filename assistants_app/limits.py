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
import time
import weakref
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import redis.asyncio
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.utils import timezone

from . import usage
from .exceptions import RateLimited
from .models import Run, UsageLimit

log = logging.getLogger(__name__)

# How long a user's open-socket count outlives its last connect. A process that dies cannot
# decrement its sockets' counts; this bounds how long they go on counting.
SOCKET_COUNT_SECONDS = 15 * 60
# Connections to Redis for the socket counts, per process: a count takes well under a
# millisecond of one, so a few dozen serve a burst of thousands of connects.
REDIS_CONNECTIONS = 32


@dataclass(frozen=True)
class Limits:
    """One user's limits; 0 means no limit."""

    messages_per_minute: int
    concurrent_runs: int
    daily_token_budget: int


def limits_for(user) -> Limits:
    """The site's defaults, overridden field by field by the user's UsageLimit in admin."""
    override = UsageLimit.objects.filter(user=user).first()

    def pick(name: str) -> int:
        value = getattr(override, name, None)
        return getattr(settings, name.upper()) if value is None else value

    return Limits(
        messages_per_minute=pick("messages_per_minute"),
        concurrent_runs=pick("concurrent_runs"),
        daily_token_budget=pick("daily_token_budget"),
    )


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
        active = Run.objects.filter(thread__owner=user).active().count()
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
# Counted on every connect and disconnect, so without a thread hop: through redis' asyncio
# client when the cache is Redis, and directly on the event loop when it is this process's
# memory (no I/O there). Either way it is the same key the cache's own API reads and the
# exit handler below decrements.

# user id -> this process's sockets in that user's count, taken out on a clean exit.
_counted_here: Counter[int] = Counter()

# +n: add and renew the expiry; -n: take away, unless the count has expired meanwhile (then
# there is nothing to take away from, and DECRBY would make it negative).
_ADD_SOCKETS = """
local n = tonumber(ARGV[1])
if n < 0 and redis.call('exists', KEYS[1]) == 0 then return 0 end
local count = redis.call('incrby', KEYS[1], n)
if n > 0 then redis.call('expire', KEYS[1], ARGV[2]) end
return count
"""
# event loop -> its redis client: redis.asyncio connections belong to the loop that made them.
_redis_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, object]" = (
    weakref.WeakKeyDictionary()
)


async def open_socket(user) -> bool:
    """Count a new socket of the user; False (and not counted) when over the limit."""
    count = await _add_sockets(user.pk, 1)
    _counted_here[user.pk] += 1
    if settings.WEBSOCKETS_PER_USER and count > settings.WEBSOCKETS_PER_USER:
        await close_socket(user)
        return False
    return True


async def close_socket(user) -> None:
    _forget_here(user.pk, 1)
    await _add_sockets(user.pk, -1)


@atexit.register
def close_all_sockets() -> None:
    """On a clean exit (daphne's SIGTERM included) take this process's sockets out of the
    counts, instead of leaving them to expire: a restart must not lock people out."""
    for user_id, sockets in list(_counted_here.items()):
        _forget_here(user_id, sockets)
        try:
            cache.decr(_socket_key(user_id), sockets)
        except ValueError:  # the count expired while the sockets were open
            pass
        except Exception:  # the cache may be gone at exit; the counts expire on their own
            log.warning("could not release the socket counts of user %s at exit", user_id)


def _forget_here(user_id: int, sockets: int) -> None:
    _counted_here[user_id] -= sockets
    if _counted_here[user_id] <= 0:
        del _counted_here[user_id]


async def _add_sockets(user_id: int, sockets: int) -> int:
    key = _socket_key(user_id)
    if not isinstance(caches["default"], RedisCache):
        return _add_sockets_in_memory(key, sockets)
    script = _redis_client().register_script(_ADD_SOCKETS)
    full_key = cache.make_and_validate_key(key)
    return int(await script(keys=[full_key], args=[sockets, SOCKET_COUNT_SECONDS]))


def _add_sockets_in_memory(key: str, sockets: int) -> int:
    if sockets > 0:
        count = increment(key, SOCKET_COUNT_SECONDS)
        cache.touch(key, SOCKET_COUNT_SECONDS)
        return count
    try:
        return cache.decr(key, -sockets)
    except ValueError:  # the count expired while the sockets were open
        return 0


def _redis_client():
    loop = asyncio.get_running_loop()
    client = _redis_clients.get(loop)
    if client is None:
        location = settings.CACHES["default"]["LOCATION"]
        url = location if isinstance(location, str) else location[0]
        # Blocking: a connect burst waits for a free connection instead of failing.
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url, max_connections=REDIS_CONNECTIONS, timeout=30
        )
        client = _redis_clients[loop] = redis.asyncio.Redis(connection_pool=pool)
    return client


def _socket_key(user_id: int) -> str:
    return f"sockets:{user_id}"
