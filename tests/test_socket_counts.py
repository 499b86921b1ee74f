"""Open sockets per user (WEBSOCKETS_PER_USER) cannot leak: a socket leaves the count however
it ends, and the sockets of a process that died lapse within a minute, in memory and in Redis.
"""

import asyncio
import uuid

import pytest
import redis

from assistants_app import consumers, limits

from .sockets import communicator, refusal

pytestmark = pytest.mark.django_db(transaction=True)

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", "redis"])
def cache_backend(request, settings):
    """Each test runs with this process's memory cache and with a Redis shared by processes."""
    if request.param == "memory":
        yield
        return
    prefix = f"socket-counts-test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": prefix,
        }
    }
    yield
    server = redis.Redis.from_url(REDIS_URL)
    for key in server.scan_iter(f"{prefix}*"):
        server.delete(key)


@pytest.fixture(autouse=True)
async def nothing_held_across_tests():
    """Each test starts and ends with no socket held by this process, so no heartbeat of one
    test's event loop is still beating, at a tenth of a second, into the next test or into
    the loop's teardown (sockets of other modules' consumers included)."""
    await _close_all_held()
    yield
    await _close_all_held()


async def _close_all_held():
    for socket_id in list(limits._held_here):
        await limits.close_socket(socket_id)


@pytest.fixture
def short_lives(monkeypatch):
    """Entries last half a second unless their process renews them, every tenth of one."""
    monkeypatch.setattr(limits, "SOCKET_TTL_SECONDS", 0.5)
    monkeypatch.setattr(limits, "SOCKET_HEARTBEAT_SECONDS", 0.1)


def die(socket_ids: list[str]) -> None:
    """What SIGKILL does to a process's sockets: nobody closes them, nobody renews them."""
    for socket_id in socket_ids:
        limits._held_here.pop(socket_id)


async def test_it_counts_sockets_up_to_the_limit_per_user(cache_backend, alice, bob, settings):
    settings.WEBSOCKETS_PER_USER = 2
    first, second = await limits.open_socket(alice), await limits.open_socket(alice)
    assert first and second and first != second
    assert await limits.open_socket(alice) is None
    bobs = await limits.open_socket(bob)
    assert bobs  # bob has his own

    await limits.close_socket(first)
    await limits.close_socket(first)  # twice: still one place freed, not two
    third = await limits.open_socket(alice)
    assert third and await limits.open_socket(alice) is None
    for socket_id in (second, third, bobs):
        await limits.close_socket(socket_id)


async def test_a_dead_processs_sockets_lapse_quickly(cache_backend, alice, settings, short_lives):
    settings.WEBSOCKETS_PER_USER = 2
    held = [await limits.open_socket(alice), await limits.open_socket(alice)]
    die(held)
    assert await limits.open_socket(alice) is None

    await asyncio.sleep(0.7)

    back = [await limits.open_socket(alice), await limits.open_socket(alice)]
    assert all(back)
    for socket_id in back:
        await limits.close_socket(socket_id)


async def test_live_sockets_are_renewed_and_refusals_renew_nothing(
    cache_backend, alice, settings, short_lives
):
    settings.WEBSOCKETS_PER_USER = 1
    held = await limits.open_socket(alice)
    for _ in range(8):  # well past the lifetime of an entry, knocking all along
        await asyncio.sleep(0.1)
        assert await limits.open_socket(alice) is None
    await limits.close_socket(held)
    again = await limits.open_socket(alice)
    assert again is not None
    await limits.close_socket(again)


async def test_a_clean_exit_takes_its_sockets_out_of_the_counts(cache_backend, alice, settings):
    settings.WEBSOCKETS_PER_USER = 2
    assert await limits.open_socket(alice) and await limits.open_socket(alice)

    limits.close_all_sockets()  # what atexit runs when daphne stops

    back = [await limits.open_socket(alice), await limits.open_socket(alice)]
    assert all(back)
    limits.close_all_sockets()


async def test_a_crashed_consumer_gives_its_place_back(alice_thread, alice_cookie, settings):
    settings.WEBSOCKETS_PER_USER = 1
    path = f"/ws/threads/{alice_thread.pk}/"
    socket = communicator(path, alice_cookie)
    assert (await socket.connect())[0]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(consumers.ThreadConsumer, "handle", _crash)
        await socket.send_json_to({"type": "hello"})
        with pytest.raises(RuntimeError):
            await socket.receive_output()

    assert await refusal(path, alice_cookie) is None  # not 4429: the crash freed its place


async def _crash(self, event):
    raise RuntimeError("a bug in a handler")
