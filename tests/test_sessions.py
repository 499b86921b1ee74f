"""Sessions are Django's own, read with a statement built once (assistants_app/sessions.py):
whoever is signed in stays so, an expired or unknown session signs nobody in."""

from datetime import timedelta

import pytest
from django.contrib.sessions.backends import db as django_db_sessions
from django.contrib.sessions.models import Session
from django.db import connection
from django.db.models.sql.compiler import SQLCompiler
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from assistants_app.sessions import SessionStore

pytestmark = pytest.mark.django_db


def test_a_session_django_stored_reads_the_same(alice):
    theirs = django_db_sessions.SessionStore()
    theirs.update({"_auth_user_id": str(alice.pk), "seen": [1, 2]})
    theirs.create()

    ours = SessionStore(theirs.session_key)

    assert dict(ours.items()) == {"_auth_user_id": str(alice.pk), "seen": [1, 2]}
    assert ours.session_key == theirs.session_key


def test_a_signed_in_page_reads_its_session_in_one_statement(client, alice):
    client.force_login(alice)
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/")
    assert page.status_code == 200
    reads = [q["sql"] for q in queries if "django_session" in q["sql"]]
    assert len(reads) == 1 and "expire_date" in reads[0]


def test_an_expired_session_signs_nobody_in(client, alice):
    client.force_login(alice)
    key = client.cookies["sessionid"].value
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(1))

    page = client.get("/")

    assert page.status_code == 302 and "/login" in page["Location"]
    store = SessionStore(key)
    assert dict(store.items()) == {} and store.session_key is None


def test_an_unknown_key_starts_an_empty_session(db):
    store = SessionStore("x" * 32)
    assert dict(store.items()) == {} and store.session_key is None


def test_reading_a_session_builds_no_statement_after_the_first(alice, monkeypatch):
    stored = SessionStore()
    stored["_auth_user_id"] = str(alice.pk)
    stored.create()
    SessionStore(stored.session_key).load()  # the first read builds it
    built = []
    as_sql = SQLCompiler.as_sql

    def building(self, *args, **kwargs):
        built.append(self.query)
        return as_sql(self, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", building)

    assert SessionStore(stored.session_key).load() == {"_auth_user_id": str(alice.pk)}
    assert built == []
