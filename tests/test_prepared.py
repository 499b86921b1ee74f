"""Statements built once and sent with new values (prepared.py) answer what the ORM answers, and
a statement that could not be sent that way is refused when first built, not run wrong."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db.models import Exists, F, OuterRef, Sum
from django.db.models.functions import Length
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from assistants_app import prepared
from assistants_app.models import Message, Run, RunStatus, Thread, UsageRecord

from .conftest import make_assistant
from .live import postgres_database

pytestmark = pytest.mark.django_db


@pytest.fixture
def threads(alice, bob, assistant):
    mine = Thread.objects.create(owner=alice, assistant=assistant, title="Mine")
    other = make_assistant(name="Other")
    theirs = Thread.objects.create(owner=bob, assistant=other, title="Theirs")
    for thread, texts in [(mine, ["Hello", "How are you?"]), (theirs, ["Hi"])]:
        for text in texts:
            Message.objects.create(thread=thread, role=Message.Role.USER, text=text)
    Run.objects.create(thread=mine, prompt=mine.messages.last())
    return mine, theirs


@prepared.select
def owned_thread(owner_id: int, thread_id: int):
    return Thread.objects.filter(owner_id=owner_id, pk=thread_id).select_related("assistant")


@prepared.select
def thread_state(thread_id: int):
    busy = Exists(Run.objects.filter(thread=OuterRef("pk")).active())
    return Thread.objects.filter(pk=thread_id).values("assistant_id", "title").annotate(busy=busy)


@prepared.select
def characters(thread_id: int):
    messages = Message.objects.filter(thread_id=thread_id).values("thread_id")
    return messages.annotate(chars=Sum(Length("text"))).values_list("chars", flat=True)


@prepared.select
def texts_in_order(thread_id: int, role: str):
    return (
        Message.objects.filter(thread_id=thread_id, role=role)
        .order_by("pk")
        .values_list("pk", "text", "created_at")
    )


@prepared.update
def finish(run_id: int, status: str, finished: datetime | None, code: str):
    return Run.objects.filter(pk=run_id).active(), {
        "status": status,
        "finished_at": finished,
        "error_code": code,
    }


def test_a_select_of_models_answers_what_the_orm_answers(threads, alice, bob):
    mine, theirs = threads
    [found] = owned_thread(owner_id=alice.pk, thread_id=mine.pk)
    expected = Thread.objects.select_related("assistant").get(pk=mine.pk)
    assert [found.pk, found.title, found.updated_at, found.current_leaf_id] == [
        expected.pk, expected.title, expected.updated_at, expected.current_leaf_id
    ]  # fmt: skip
    assert found.assistant.name == "Helper"  # loaded with it
    assert found._state.adding is False and found._state.db == "default"
    # Each call sends its own values: not alice's thread for bob, bob's own for him.
    assert owned_thread(owner_id=bob.pk, thread_id=mine.pk) == []
    assert owned_thread(owner_id=bob.pk, thread_id=theirs.pk)[0].assistant.name == "Other"


def test_values_an_annotation_and_an_aggregate_answer_what_the_orm_answers(threads):
    mine, theirs = threads
    assert thread_state(thread_id=mine.pk) == [
        {"assistant_id": mine.assistant_id, "title": "Mine", "busy": True}
    ]
    assert thread_state(thread_id=theirs.pk)[0]["busy"] is False
    assert characters(thread_id=mine.pk) == [len("Hello") + len("How are you?")]
    rows = texts_in_order(thread_id=mine.pk, role="user")
    assert rows == list(
        Message.objects.filter(thread=mine).order_by("pk").values_list("pk", "text", "created_at")
    )
    assert isinstance(rows[0][2], datetime) and rows[0][2].tzinfo is not None  # converted
    assert texts_in_order(thread_id=mine.pk, role="assistant") == []


def test_an_update_changes_what_the_orms_update_would_and_counts_the_rows(threads):
    run = Run.objects.get()
    finished = timezone.now() - timedelta(minutes=5)
    assert finish(run_id=run.pk, status=RunStatus.FAILED, finished=finished, code="X") == 1
    run.refresh_from_db()
    assert (run.status, run.finished_at, run.error_code) == (RunStatus.FAILED, finished, "X")
    # No longer active: the filter is in the statement, so nothing changes.
    assert finish(run_id=run.pk, status=RunStatus.COMPLETED, finished=None, code="") == 0
    Run.objects.filter(pk=run.pk).update(status=RunStatus.IN_PROGRESS)
    assert finish(run_id=run.pk, status=RunStatus.COMPLETED, finished=None, code="") == 1
    run.refresh_from_db()
    assert (run.status, run.finished_at) == (RunStatus.COMPLETED, None)


def test_a_statement_is_built_once_per_database(threads, alice):
    built = []

    @prepared.select
    def counted(thread_id: int):
        built.append(thread_id)
        return Thread.objects.filter(pk=thread_id).values_list("title", flat=True)

    mine, theirs = threads
    assert counted(thread_id=mine.pk) == ["Mine"]
    first = len(built)
    assert counted(thread_id=theirs.pk) == ["Theirs"]
    assert counted(thread_id=mine.pk) == ["Mine"]
    assert len(built) == first  # the two later calls built nothing
    assert mine.pk not in built and theirs.pk not in built  # only stand-ins were built


def test_a_value_that_changes_the_sql_is_refused_when_built(threads):
    @prepared.select
    def partial_ones(partial: bool):  # Django writes "is_partial" or NOT "is_partial"
        return Message.objects.filter(is_partial=partial)

    with pytest.raises(ValueError, match="partial changes its SQL"):
        partial_ones(partial=True)

    @prepared.select
    def containing(text: str):  # the lookup sends "%text%", not the value
        return Message.objects.filter(text__contains=text)

    with pytest.raises(ValueError, match="text is sent rewritten"):
        containing(text="Hello")


def test_a_statement_that_reads_the_clock_while_built_is_refused(threads):
    @prepared.update
    def touch(thread_id: int):
        return Thread.objects.filter(pk=thread_id), {"updated_at": timezone.now()}

    with pytest.raises(ValueError, match="changes from one build to the next"):
        touch(thread_id=threads[0].pk)


def test_none_is_compared_and_set_as_sql_null(threads):
    @prepared.select
    def following(parent_id: int | None):
        following = Message.objects.filter(parent_id=parent_id).order_by("pk")
        return following.values_list("text", flat=True)

    first = Message.objects.filter(text="Hello").get()
    assert following(parent_id=None) == ["Hello", "Hi"]  # IS NULL
    assert following(parent_id=first.pk) == ["How are you?"]  # = %s
    assert following(parent_id=None) == ["Hello", "Hi"]


def test_values_are_declared_and_given_by_name(threads):
    with pytest.raises(TypeError, match="declare the kind"):

        @prepared.select
        def undeclared(thread_id):
            return Thread.objects.filter(pk=thread_id)

    with pytest.raises(TypeError, match="thread_id"):
        thread_state(thread=1)


def test_field_kind_follows_the_models_field():
    assert prepared.field_kind(Run, "status") is str
    assert prepared.field_kind(Run, "finished_at") == datetime | None
    assert prepared.field_kind(Run, "thread_id") is int
    assert prepared.field_kind(Run, "usage_estimated") is bool


def test_a_datetime_filter_is_sent_as_the_database_stores_it(threads):
    @prepared.select
    def made_since(thread_id: int, since: datetime):
        return Message.objects.filter(thread_id=thread_id, created_at__gte=since).values_list(
            "text", flat=True
        )

    mine, _ = threads
    assert made_since(thread_id=mine.pk, since=datetime(2000, 1, 1, tzinfo=UTC)) == [
        "Hello", "How are you?"
    ]  # fmt: skip
    assert made_since(thread_id=mine.pk, since=timezone.now() + timedelta(days=1)) == []


@pytest.mark.slow
@pytest.mark.django_db(False)
def test_the_same_checks_pass_on_postgresql():
    """The tests above, run again in a process of their own on PostgreSQL (the site's other
    database, whose SQL, parameters and converters differ from SQLite's)."""
    here = os.path.dirname(__file__)
    with postgres_database() as url:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-m",
                "not slow",
                os.path.join(here, "test_prepared.py"),
            ],  # fmt: skip
            env={**os.environ, "DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


def test_f_expressions_stay_in_the_sql(threads):
    @prepared.update
    def retitle(thread_id: int, suffix: str):
        return Thread.objects.filter(pk=thread_id), {"title": F("remote_id"), "remote_id": suffix}

    mine, _ = threads
    assert retitle(thread_id=mine.pk, suffix="conv_1") == 1
    mine.refresh_from_db()
    assert (mine.title, mine.remote_id) == ("", "conv_1")


def test_an_insert_stores_the_row_the_orms_create_would(threads, alice):
    mine, _ = threads
    prompt = mine.messages.last()
    when = timezone.now() - timedelta(minutes=5)
    fields = {
        Run: {"thread": mine, "prompt": prompt, "status": "completed", "remote_id": "resp_1",
              "input_tokens": 12, "usage_estimated": True, "created_at": when},
        UsageRecord: {"user": alice, "assistant_id": mine.assistant_id, "created_at": when,
                      "charged_tokens": 700, "model": "gpt-x", "charged_cost": Decimal("0.25")},
        Message: {"thread": mine, "role": "assistant", "text": "Hi", "is_partial": True,
                  "parent_id": prompt.pk, "created_at": when},
    }  # fmt: skip
    for model, given in fields.items():
        created = model.objects.create(**given)
        inserted = model(**given)

        assert prepared.insert(inserted) is True

        assert inserted.pk is not None and inserted.pk != created.pk
        assert not inserted._state.adding and inserted._state.db == "default"
        stored = model.objects.filter(pk__in=[created.pk, inserted.pk]).order_by("pk")
        assert len(rows := [row_of(instance) for instance in stored]) == 2
        assert rows[0] == rows[1], model.__name__


def row_of(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields[1:]}


def test_an_insert_takes_the_id_of_a_related_instance_saved_since_it_was_given(threads):
    mine, _ = threads
    question = Message(thread=mine, role="user", text="And then?")
    run = Run(thread=mine, prompt=question, status="completed")
    question.insert()

    prepared.insert(run)

    assert Run.objects.get(pk=run.pk).prompt_id == question.pk


def test_an_insert_takes_only_a_new_instance(threads):
    mine, _ = threads
    with pytest.raises(ValueError):
        prepared.insert(mine)
    with pytest.raises(ValueError):
        prepared.insert(Thread(pk=10_000, owner_id=mine.owner_id, assistant=mine.assistant))


def test_an_insert_kept_out_by_its_conflict_clause_answers_false(threads):
    mine, _ = threads
    first = Message(thread=mine, role="assistant", text="Once", remote_id="msg_once")
    again = Message(thread=mine, role="assistant", text="Twice", remote_id="msg_once")

    assert first.save_unless_stored() is True
    assert again.save_unless_stored() is False

    assert again.pk is None and again._state.adding
    assert list(mine.messages.filter(remote_id="msg_once").values_list("text", flat=True)) == [
        "Once"
    ]


@pytest.mark.parametrize("model", [Message, Run, UsageRecord])
def test_the_models_inserted_without_save_have_no_save_signals(model):
    """prepared.insert sends no pre_save or post_save: true to the ORM only while nothing
    listens for them on the models every answer inserts (services.py, usage.py)."""
    assert not pre_save.has_listeners(model)
    assert not post_save.has_listeners(model)
