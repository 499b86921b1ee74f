"""Where a server's calls to the database spend their time: `PYTHONPATH=$PWD/bench/hop_watch
python -m bench ...` (an absolute path, as the servers of `--site` run in another folder).

A diagnostic, not part of the site: once Django is set up in a web server process, each call
that goes to a database thread (assistants_app/db.py) writes to the server's log (the
benchmark's NAME-SCENARIO.log) a `hop-watch` line with how long it waited for a thread, ran
there and then waited for the event loop to take its answer; and each `record` of a run's end
(runs/store.py: its store and the events sent after it) a line with its whole time.
`python -m bench.hop_watch LOG ...` prints their percentiles. It reaches into db.py's
_DatabaseCall and _PooledSyncToAsync, as they are at the commit it was written for.
"""

import contextvars
import os
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[2]))  # for bench.server_hook
from bench.server_hook import after_django_setup, is_server  # noqa: E402

_call: contextvars.ContextVar = contextvars.ContextVar("hop_watch_call", default=None)


def _line(text: str) -> None:
    sys.stderr.write(f"hop-watch pid={os.getpid()} {text}\n")


def _install() -> None:
    from assistants_app import db
    from assistants_app.models import ACTIVE_STATUSES
    from assistants_app.runs import driver, store, streaming

    def on_thread(func):
        def timed(*args, **kwargs):  # runs in the call's context, on the database thread
            times = _call.get()
            if times is not None:
                times["started"] = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                if times is not None:
                    times["ended"] = time.perf_counter()

        timed.hop_watch = True
        return timed

    called = db._DatabaseCall.__call__

    async def call(self, *args, **kwargs):
        pooled = self._pooled
        if pooled is not None and not getattr(pooled.func, "hop_watch", False):
            pooled.func = on_thread(pooled.func)
        times = {}
        _call.set(times)
        asked = time.perf_counter()
        try:
            return await called(self, *args, **kwargs)
        finally:
            done = time.perf_counter()
            if "ended" in times:
                queued, ran = times["started"] - asked, times["ended"] - times["started"]
                _line(
                    f"call={self.__name__} queued={1000 * queued:.2f} ran={1000 * ran:.2f} "
                    f"resumed={1000 * (done - times['ended']):.2f}"
                )

    db._DatabaseCall.__call__ = call
    recorded = store.record

    async def record(run, update):
        asked = time.perf_counter()
        try:
            return await recorded(run, update)
        finally:
            if update.status not in ACTIVE_STATUSES:
                _line(f"record-end total={1000 * (time.perf_counter() - asked):.2f}")

    for module in (store, driver, streaming):
        if getattr(module, "record", None) is recorded:
            module.record = record


if is_server():
    after_django_setup(_install)
