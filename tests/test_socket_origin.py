"""Which pages may open a thread's websocket: the site's own origin by scheme, host and port,
or one of DJANGO_CSRF_TRUSTED_ORIGINS; a page on another port of the same host may not."""

import pytest

from .sockets import communicator

pytestmark = pytest.mark.django_db(transaction=True)


async def opens(path, cookie, origin, host="localhost:8000", headers=()) -> bool:
    socket = communicator(path, cookie, origin=origin, host=host)
    socket.scope["headers"] += list(headers)
    connected, _ = await socket.connect()
    await socket.disconnect()
    return connected


@pytest.fixture
def path(alice_thread):
    return f"/ws/threads/{alice_thread.pk}/"


async def test_the_sites_own_page_opens_it(path, alice_cookie):
    assert await opens(path, alice_cookie, "http://localhost:8000")


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:9999",  # another port of the same host: anything a user runs there
        "http://localhost",
        "https://localhost:8000",  # another scheme
        "http://127.0.0.1:8000",  # another allowed host is another origin
        "http://localhost:8000.evil.example",
        "null",
        "http://[::1",  # not even a URL
    ],
)
async def test_it_refuses_another_origin_of_an_allowed_host(path, alice_cookie, origin):
    assert not await opens(path, alice_cookie, origin)


async def test_it_refuses_a_host_that_is_not_allowed(path, alice_cookie):
    # DNS rebinding: the page and the Host header agree, but the host is not ours.
    assert not await opens(path, alice_cookie, "http://evil.example", host="evil.example")


async def test_trusted_origins_open_it(path, alice_cookie, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com", "https://*.example.org"]
    # Behind a proxy that passes no Host of its own: only the trusted origins count.
    assert await opens(path, alice_cookie, "https://chat.example.com", host="127.0.0.1:8001")
    assert await opens(path, alice_cookie, "https://eu.example.org", host="127.0.0.1:8001")
    assert not await opens(path, alice_cookie, "http://chat.example.com", host="127.0.0.1:8001")
    assert not await opens(path, alice_cookie, "https://chat.example.com:8443", "127.0.0.1:8001")


@pytest.mark.parametrize(
    ("behind_proxy", "forwarded", "origin", "allowed"),
    [
        (True, b"https", "https://chat.example.com", True),
        (True, b"https", "http://chat.example.com", False),
        (True, b"http", "https://chat.example.com", False),
        # Without DJANGO_BEHIND_PROXY nobody's X-Forwarded-Proto is believed.
        (False, b"https", "https://chat.example.com", False),
        (False, b"https", "http://chat.example.com", True),
    ],
)
async def test_behind_a_proxy_its_forwarded_scheme_counts(
    path, alice_cookie, settings, behind_proxy, forwarded, origin, allowed
):
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if behind_proxy else None
    header = [(b"x-forwarded-proto", forwarded)]
    assert await opens(path, alice_cookie, origin, "chat.example.com", header) is allowed
