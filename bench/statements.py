"""What one database statement of an answer costs the server's CPU: the statement made by the
ORM, as the site made it before prepared.py, against the same statement built once
(prepared.py, as the site makes it now) and the very same SQL sent as it is.

`python -m bench.statements` (`--database sqlite` for the embedded default) makes a database of
its own, runs each statement below a few hundred times both ways and prints the CPU
microseconds of each. The difference is what building the statement (the QuerySet, its
expressions, the compiler) and turning its rows into objects cost, every time: BENCHMARKS.md,
"Cost per answer", weighs it against what an answer spends.
"""

import argparse
import os
import resource
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

REPEATS = 300


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def per_call(call, repeats: int = REPEATS) -> float:
    """CPU microseconds one call takes, after a first call that warms caches."""
    call()
    started = cpu_seconds()
    for _ in range(repeats):
        call()
    return 1e6 * (cpu_seconds() - started) / repeats


@contextmanager
def database(kind: str):
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'statements.sqlite3'}"
        return
    from tests.live import postgres_database

    with postgres_database() as url:
        yield url


def statements(user, thread, run, session_key):
    """(what the site does, the ORM call, the call built once) for statements every answer
    makes (the ORM calls copied from services.py, store.py and views.py as they were before
    prepared.py; the others are the site's own)."""
    from django.contrib.sessions.models import Session
    from django.db.models import Exists, OuterRef
    from django.utils import timezone

    from assistants_app import prepared, services, sessions
    from assistants_app.models import Assistant, Run, Thread, UsageRecord
    from assistants_app.runs import store

    def session_read():  # Django's db SessionStore._get_session_from_db
        return Session.objects.get(session_key=session_key, expire_date__gt=timezone.now())

    def thread_of_user():  # services.athread_of
        threads = Thread.objects.owned_by(user).select_related("assistant")
        return threads.filter(pk=thread.pk).first()

    def may_use():  # services._check_may_use
        return Assistant.objects.available_to(user).filter(pk=thread.assistant_id).exists()

    def read_under_the_lock():  # services._starting_a_run
        busy = Exists(Run.objects.filter(thread=OuterRef("pk")).active())
        stored = Thread.objects.filter(pk=thread.pk).values("assistant_id", "current_leaf_id")
        return stored.annotate(busy=busy).get()

    def run_status_update():  # store._store
        return Run.objects.filter(pk=run.pk).active().update(status="in_progress")

    ended = {"thread": thread, "prompt": run.prompt, "status": "completed"}  # one active a thread

    def run_created():  # services.new_run, before prepared.insert
        return Run.objects.create(**ended)

    def run_inserted():
        prepared.insert(Run(**ended))

    def usage_created():  # usage.reserve, before prepared.insert (a record of no run: one each)
        return UsageRecord.objects.create(user=user, assistant_id=thread.assistant_id, model="m")

    def usage_inserted():
        prepared.insert(UsageRecord(user=user, assistant_id=thread.assistant_id, model="m"))

    def run_loaded():  # driver._load
        runs = Run.objects.select_related("thread__assistant", "thread__owner")
        return runs.filter(pk=run.pk).first()

    return [
        ("a request's session (sessions.py)", session_read,
         lambda: sessions._unexpired(session_key=session_key, now=timezone.now())),
        ("a user's thread, with its assistant", thread_of_user,
         lambda: services._owned_thread(owner_id=user.pk, thread_id=thread.pk)),
        ("whether the user may use its assistant", may_use,
         lambda: services._usable(user_id=user.pk, assistant_id=thread.assistant_id)),
        ("a send's read under the lock", read_under_the_lock,
         lambda: services._stored_thread(thread_id=thread.pk)),
        ("a run's status written", run_status_update,
         lambda: store._write_active_run(run.pk, {"status": "in_progress"}, going=False)),
        ("a run inserted", run_created, run_inserted),
        ("a usage record inserted", usage_created, usage_inserted),
        ("a run loaded with its thread", run_loaded, None),
    ]  # fmt: skip


def as_sent(call) -> str:
    """The SQL the ORM call sent, with its values in it (PostgreSQL's own; SQLite's as
    Django prints it, which it takes back)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as sent:
        call()
    return sent.captured_queries[-1]["sql"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.statements", description=__doc__)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    with database(args.database) as url:
        os.environ["DATABASE_URL"] = url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.db import connection

        from assistants_app.models import Assistant, Message, Run, Thread
        from assistants_app.sessions import SessionStore

        call_command("migrate", verbosity=0)
        user = get_user_model().objects.create_user("statements")
        assistant = Assistant.objects.create(name="Bench", provider="simulator")
        thread = Thread.objects.create(owner=user, assistant=assistant)
        prompt = Message.objects.create(thread=thread, role="user", text="Hello")
        run = Run.objects.create(thread=thread, prompt=prompt)
        session = SessionStore()
        session["_auth_user_id"] = str(user.pk)
        session.create()
        print(
            f"| statement ({args.database}) | ORM (µs CPU) | built once, prepared.py (µs CPU) "
            "| same SQL sent (µs CPU) | ORM / sent | built once / sent |"
        )
        print("|---|---|---|---|---|---|")
        for name, call, built_once in statements(user, thread, run, session.session_key):
            sql = as_sent(call)

            def sent(sql=sql):
                with connection.cursor() as cursor:
                    cursor.execute(sql)
                    if cursor.description:
                        cursor.fetchall()

            orm, plain = per_call(call, args.repeats), per_call(sent, args.repeats)
            once = per_call(built_once, args.repeats) if built_once else None
            print(
                f"| {name} | {orm:,.0f} | {f'{once:,.0f}' if once else '-'} | {plain:,.0f} "
                f"| {orm / plain:.1f} | {f'{once / plain:.1f}' if once else '-'} |"
            )
        connection.close()


if __name__ == "__main__":
    main()
