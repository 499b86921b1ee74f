"""Who a websocket belongs to: Channels' session login, looked up off the shared thread.

Channels' AuthMiddlewareStack runs its user lookup (the session row, the user row, the
session hash check) on the one database thread per process, where every connect of a burst
queues behind every other socket's database work. This is the same stack and the same lookup,
Channels' own function unchanged; only the thread it runs on differs, and it waits in the
socket lane for its turn (assistants_app/db.py).
"""

from channels.auth import AuthMiddleware, get_user
from channels.sessions import CookieMiddleware, SessionMiddleware

from .db import socket_database_call

# `get_user` is Channels' lookup wrapped in its database_sync_to_async; `.func` is the lookup.
_get_user = socket_database_call(get_user.func, opens_socket=True)


class SocketAuthMiddleware(AuthMiddleware):
    async def resolve_scope(self, scope):
        scope["user"]._wrapped = await _get_user(scope)


def SocketAuthMiddlewareStack(inner):  # noqa: N802 (named like Channels' AuthMiddlewareStack)
    return CookieMiddleware(SessionMiddleware(SocketAuthMiddleware(inner)))
