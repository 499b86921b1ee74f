"""Websocket test helpers: the site's whole ASGI stack (origin check, session login, routing)
driven in memory with Channels' WebsocketCommunicator."""

from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from chatsite.asgi import application

ORIGIN = "http://localhost"


def session_cookie(user) -> str:
    """A logged-in session for `user`, as the browser's Cookie header would carry it."""
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def communicator(path: str, cookie: str | None = None, origin: str | None = ORIGIN,
                 host: str = "localhost"):  # fmt: skip
    headers = [(b"host", host.encode())]
    if origin:
        headers.append((b"origin", origin.encode()))
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def refusal(path: str, cookie: str | None = None) -> int | None:
    """The code a socket is closed with right after connecting, or None if it stays open."""
    socket = communicator(path, cookie)
    connected, code = await socket.connect()
    if not connected:
        return code
    if await socket.receive_nothing(timeout=0.2):
        await socket.disconnect()
        return None
    output = await socket.receive_output()
    await socket.disconnect()
    assert output["type"] == "websocket.close", output
    return output["code"]
