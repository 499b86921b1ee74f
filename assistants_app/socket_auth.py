"""Who a websocket belongs to: Channels' session login, looked up off the shared thread.

Channels' AuthMiddlewareStack looks the user up (the session row, the user row, the session
hash check) in a database call of its own before the consumer runs, on the one database
thread per process, where every connect of a burst queues behind every other socket's
database work. This is the same stack and the same lookup, Channels' own function unchanged;
it runs when the thread's consumer connects, in the one database call that also looks up the
thread (consumers.py): a connect is one trip to a database thread and one place in the socket
lane (assistants_app/db.py), not two. Until then the scope's user is not ready, and reading it
raises (Channels' `UserLazyObject`): it is never anyone else.
"""

from importlib import import_module

from channels.auth import AuthMiddleware, get_user
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings


class SocketAuthMiddleware(AuthMiddleware):
    async def resolve_scope(self, scope):
        pass  # looked up with the consumer's first database call: `user_of`


def user_of(scope):
    """The socket's user, by Channels' lookup (`get_user` is it wrapped in its
    database_sync_to_async; `.func` is the lookup), kept in the scope. Call on a database
    thread."""
    user = get_user.func(scope)
    scope["user"]._wrapped = user
    return user


def signed_in_now(scope, user):
    """`user` as stored now, if the session the socket opened with still signs them in;
    otherwise None. A socket lives for hours: what it posts must be as signed in as an HTTP
    post, so a logout, a password change or a deactivation since it opened counts. The
    session is read afresh (the scope's copy is the one read at connect). Call on a database
    thread."""
    session_key = scope["session"].session_key
    if not session_key:
        return None
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    now = get_user.func({**scope, "session": session})
    return now if now.is_authenticated and now.pk == user.pk else None


def SocketAuthMiddlewareStack(inner):  # noqa: N802 (named like Channels' AuthMiddlewareStack)
    return CookieMiddleware(SessionMiddleware(SocketAuthMiddleware(inner)))
