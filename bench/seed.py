"""Bench-only: many logged-in users at once, without a password hash or a login request each.

`seed(count)` runs inside the site (`manage.py shell`) and answers each user's session key and
thread id. Users get an unusable password and a session row written directly, which is what a
login would have stored.
"""

from datetime import timedelta

from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
)
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone
from django.utils.crypto import get_random_string

from assistants_app.models import Assistant, Thread


def seed(count: int, assistant_name: str = "Sim") -> list[dict]:
    """`count` users, each logged in (a session) with one empty thread with the assistant."""
    User = get_user_model()
    assistant = Assistant.objects.get(name=assistant_name)
    users = User.objects.bulk_create(
        User(username=f"bench{i}", password=make_password(None)) for i in range(count)
    )
    threads = Thread.objects.bulk_create(
        Thread(owner=user, assistant=assistant, title=f"Bench {user.username}") for user in users
    )
    store = SessionStore()
    expires = timezone.now() + timedelta(days=1)
    sessions = [
        Session(
            session_key=get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789"),
            session_data=store.encode(
                {
                    SESSION_KEY: str(user.pk),
                    BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                    HASH_SESSION_KEY: user.get_session_auth_hash(),
                }
            ),
            expire_date=expires,
        )
        for user in users
    ]
    Session.objects.bulk_create(sessions)
    return [
        {"session": session.session_key, "thread": thread.pk}
        for session, thread in zip(sessions, threads, strict=True)
    ]
