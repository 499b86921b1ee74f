"""A provider's message is stored once, whichever driver writes it and however many write it
at the same moment: one INSERT ... ON CONFLICT DO NOTHING (Message.save_unless_stored), whose
conflict target must match the unique constraint's condition on each database.

Run against PostgreSQL too (the last test does, in a process of its own): its inference of a
partial index and its concurrent inserts differ from SQLite's.
"""

import os
import subprocess
import sys
import threading

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from assistants_app.models import Message, Thread

from .live import postgres_database

pytestmark = pytest.mark.django_db(transaction=True)


def answer(thread: Thread, remote_id: str = "msg_1", text: str = "Hello") -> Message:
    prompt = thread.messages.filter(role="user").last()
    return Message(
        thread=thread, role="assistant", text=text, remote_id=remote_id, parent_id=prompt.pk
    )


@pytest.fixture
def asked(alice_thread) -> Thread:
    """A thread whose question waits for its answer."""
    question = Message.objects.create(thread=alice_thread, role="user", text="Hi")
    Thread.objects.filter(pk=alice_thread.pk).update(current_leaf=question)
    return alice_thread


def test_a_new_answer_is_one_insert_and_the_thread_goes_on_along_it(asked):
    message = answer(asked)

    with CaptureQueriesContext(connection) as queries:
        assert message.save_unless_stored()

    stored = Message.objects.get(remote_id="msg_1")
    assert (stored.pk, stored.text, stored.role) == (message.pk, "Hello", "assistant")
    assert stored.created_at == message.created_at and not message._state.adding
    asked.refresh_from_db()
    assert asked.current_leaf_id == message.pk  # it followed the question the thread showed
    inserts = [q["sql"] for q in queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1 and "ON CONFLICT" in inserts[0]
    assert len(queries) == 2  # the insert, and the thread's news and leaf in one update


def test_an_answer_stored_already_is_not_stored_again_nor_moves_the_thread(asked):
    assert answer(asked).save_unless_stored()
    asked.refresh_from_db()
    leaf = asked.current_leaf_id

    again = answer(asked, text="Hello, again")

    assert again.save_unless_stored() is False
    assert again.pk is None and again._state.adding
    assert list(Message.objects.filter(remote_id="msg_1").values_list("text", flat=True)) == [
        "Hello"
    ]
    asked.refresh_from_db()
    assert asked.current_leaf_id == leaf


def test_the_same_provider_id_in_another_thread_is_another_message(asked, alice):
    other = Thread.objects.create(owner=alice, assistant=asked.assistant)
    Message.objects.create(thread=other, role="user", text="Hi")

    assert answer(asked).save_unless_stored()
    assert answer(other).save_unless_stored()

    assert Message.objects.filter(remote_id="msg_1").count() == 2


def test_a_message_without_a_provider_id_is_refused(asked):
    """Without one the key holds nothing back (questions have none): save() is the way."""
    with pytest.raises(ValueError):
        answer(asked, remote_id="").save_unless_stored()
    assert not Message.objects.filter(role="assistant").exists()


def test_eight_drivers_storing_one_answer_at_once_store_it_once(asked):
    if connection.vendor == "sqlite":
        pytest.skip("the test database is SQLite in memory, one writer at a time: PostgreSQL's")
    drivers = 8
    ready, stored, errors = threading.Barrier(drivers), [], []

    def store():
        try:
            with transaction.atomic():
                ready.wait()
                stored.append(answer(asked).save_unless_stored())
        except Exception as error:  # noqa: BLE001 - shown by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=store) for _ in range(drivers)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)

    assert errors == []
    assert sorted(stored) == [False] * (drivers - 1) + [True]
    assert Message.objects.filter(remote_id="msg_1").count() == 1


@pytest.mark.slow
@pytest.mark.django_db(False)
def test_the_same_checks_pass_on_postgresql():
    with postgres_database() as url:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
             os.path.abspath(__file__)],
            env={**os.environ, "DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "5 passed" in done.stdout and "skipped" not in done.stdout
