"""Django's database sessions, read with a statement built once per process (prepared.py).

Every page request, every post of a message and every socket's connect reads its session: the
ORM built that statement anew each time, 480 µs of CPU against 180 µs to send it
(`python -m bench.statements`; BENCHMARKS.md, "Cost per answer", sixth step). The sessions
are Django's own, in its table: only how the read is made differs, so changing SESSION_ENGINE
to this signs nobody out.
"""

from datetime import datetime

from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.utils import timezone

from . import prepared


class SessionStore(db.SessionStore):
    def _get_session_from_db(self):
        for session in _unexpired(session_key=self.session_key, now=timezone.now()):
            return session
        self._session_key = None  # as Django's own: a key it does not know starts anew
        return None


@prepared.select
def _unexpired(session_key: str, now: datetime):
    return Session.objects.filter(session_key=session_key, expire_date__gt=now)
