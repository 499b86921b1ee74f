"""`login_required` for our views: Django's, without its trip to a thread per async view.

Django's decorator tests `user.is_authenticated` with `sync_to_async` when the view is async:
a trip from the event loop to a thread and back on every send, stop and retry, only to read
an attribute of a user that OneThreadMiddleware (middleware.py) has already loaded. Given an
async test, Django awaits it instead. A sync view keeps Django's sync test: an async one would
be run there through `async_to_sync`, a trip the other way.
"""

from inspect import iscoroutinefunction

from django.contrib.auth.decorators import login_required as django_login_required
from django.contrib.auth.decorators import user_passes_test


async def _is_authenticated(user) -> bool:
    return user.is_authenticated


def login_required(view):
    """The view, for signed-in people only: others are sent to the login page (LOGIN_URL)."""
    if iscoroutinefunction(view):
        return user_passes_test(_is_authenticated)(view)
    return django_login_required(view)
