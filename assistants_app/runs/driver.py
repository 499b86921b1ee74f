"""The driving loop: one task per run in this process, which takes the run's lease and
follows the run until it is terminal (its stream first, where it has one, then polling with
backoff), storing what it sees through `record`.

Shared by every engine: retries, backoff and expiry live here and nowhere else. Several
processes may be asked to drive the same run; the lease (leases.py) lets exactly one do it.
"""

import asyncio
import atexit
import contextvars
import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from ..db import database_sync_to_async
from ..engines import get_engine
from ..engines.base import Engine, RunUpdate
from ..exceptions import ProviderError
from ..models import Message, Run
from . import leases, pacing
from .endings import UNEXPECTED, end_after_database_error, expire, failure, interrupted
from .leases import Lease
from .store import record
from .streaming import follow_stream
from .tool_calls import answer_tool_calls

log = logging.getLogger(__name__)


@dataclass
class _Driver:
    task: asyncio.Task
    wake: asyncio.Event  # set when someone asks again: try for the lease now


# run id -> its driver in this process. The registry owns the tasks, not the sockets: a run
# goes on being driven after the tab that started it is closed.
_driving: dict[int, _Driver] = {}


def ensure_driving(
    run_id: int, standby: bool = True, loaded: Run | None = None, stored: set[str] | None = None
) -> asyncio.Task:
    """Drive the run from this process unless a task here already does.

    With `standby`, a run whose lease another process holds is watched, and taken over when
    that lease runs out (the other process died); without, the call is a one-off attempt.
    `loaded`: the run as its starter stored it (thread and assistant loaded), whose lease this
    process holds already: driven as it is, without loading it or taking the lease again.
    `stored`: with it, the provider ids of the messages its start stored (none, mostly), so
    that polling it does not read them back.
    """
    driver = _driving.get(run_id)
    if driver and not driver.task.done() and driver.task.get_loop() is asyncio.get_running_loop():
        driver.wake.set()
        return driver.task
    wake = asyncio.Event()
    # A context of its own: a driver outlives the request or socket that asked for it, and
    # inheriting a request's context would tie its database calls to that request's thread,
    # which asgiref shuts down when the request ends.
    task = asyncio.create_task(
        drive(run_id, wake, standby, loaded, stored),
        name=f"drive-run-{run_id}",
        context=contextvars.Context(),
    )
    _driving[run_id] = _Driver(task, wake)
    task.add_done_callback(partial(_forget, run_id))
    return task


def _forget(run_id: int, task: asyncio.Task) -> None:
    if run_id in _driving and _driving[run_id].task is task:
        del _driving[run_id]
    if not task.cancelled() and task.exception():
        log.error("driving run %s ended with an error", run_id, exc_info=task.exception())


async def stop_driving(timeout: float = 5.0) -> None:
    """Cancel this process's driver tasks and release their leases (shutdown, tests)."""
    tasks = [driver.task for driver in _driving.values() if not driver.task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)


@database_sync_to_async
def orphaned_run_ids() -> list[int]:
    """Unfinished runs nobody drives: their lease is free or has run out."""
    return list(
        Run.objects.active()
        .filter(leases.free_or_expired())
        .exclude(pk__in=list(_driving))
        .values_list("pk", flat=True)
    )


async def drive(
    run_id: int, wake: asyncio.Event | None = None, standby: bool = False,
    loaded: Run | None = None, stored: set[str] | None = None,
) -> None:  # fmt: skip
    """Poll a run until it is terminal, once this process holds its lease (`loaded`: it holds
    it already, and `stored` what it stored, see ensure_driving)."""
    driver = _driving.get(run_id)
    if loaded is None and driver and driver.task is not asyncio.current_task():
        if driver.task.get_loop() is asyncio.get_running_loop():
            await asyncio.shield(driver.task)  # driven here already: wait for that driver
            return
    if loaded is not None:
        run, lease = loaded, Lease.held(run_id)
    else:
        stored = None  # read once the lease is ours
        run = await _load(run_id)
        if run is None or run.is_terminal:
            return
        lease = Lease(run_id)
        if not await lease.take() and not (standby and await lease.wait_until_free(wake)):
            return
    engine = None
    try:
        if not run.remote_id:
            # The process that stored the run died before the provider heard of it.
            await record(run, interrupted())
            return
        engine = get_engine(run.thread.assistant)
        await _follow_until_terminal(engine, run, lease, stored)
    except ProviderError as error:
        await record(run, failure(error))
    except DatabaseError as error:
        await end_after_database_error(run, error)
    except Exception:
        log.exception("run %s: unexpected error while driving it", run_id)
        await record(run, failure(UNEXPECTED))
    finally:
        if engine is not None:
            await engine.close_stream(run)  # held for a stream this driver did not follow
        if not run.is_terminal:  # the store that ended it freed the lease in the same write
            await lease.release()


async def _follow_until_terminal(
    engine: Engine, run: Run, lease: Lease, stored: set[str] | None = None
) -> None:
    """Follow the run to its end: by its stream where there is one (always, for a run that
    cannot be polled; with RUN_STREAMING for the others), else, or once the stream gave out,
    by polling with backoff. Either way it ends by RUN_MAX_SECONDS. `stored`: the provider
    ids of the run's messages stored so far, if known (else read here)."""
    # Counted from when the provider accepted the run: our own slowness is not its fault.
    deadline = (run.started_at or run.created_at) + timedelta(seconds=settings.RUN_MAX_SECONDS)
    if engine.streams and (settings.RUN_STREAMING or not engine.can_poll(run)):
        # Streaming is the fast path; polling below stays the durable one.
        if await follow_stream(engine, run, lease, deadline):
            return
        stored = None  # the stream may have stored some
    if stored is None:
        stored = await _stored_remote_ids(run)
    quiet_polls = errors = 0
    while True:
        if timezone.now() >= deadline:
            await expire(engine, run)
            return
        try:
            update = await engine.poll(run)
            if update.tool_calls:
                update = await answer_tool_calls(engine, run, update, lease=lease)
        except ProviderError as error:
            errors += 1
            if not error.retryable or errors >= pacing.MAX_CONSECUTIVE_PROVIDER_ERRORS:
                raise
            log.info("run %s: retrying after %s (attempt %s)", run.pk, error.code, errors)
            # Never sleep past the deadline: a run stuck behind errors still ends in time.
            seconds_left = (deadline - timezone.now()).total_seconds()
            await asyncio.sleep(
                max(0.0, min(pacing.retry_delay(errors, error.retry_after), seconds_left))
            )
            continue
        errors = 0
        if update is None:
            return
        if _is_news(run, update, stored):
            quiet_polls = 0
            stored.update(m.remote_id for m in update.messages)
            if not await record(run, update) or run.is_terminal:
                return
        else:
            quiet_polls += 1
        if not await lease.renew_when_due():
            return
        await asyncio.sleep(update.poll_after or pacing.poll_delay(quiet_polls))


def _is_news(run: Run, update: RunUpdate, stored: set[str]) -> bool:
    return update.status != run.status or any(m.remote_id not in stored for m in update.messages)


@database_sync_to_async
def _load(run_id: int) -> Run | None:
    runs = Run.objects.select_related("thread__assistant", "thread__owner")
    return runs.filter(pk=run_id).first()


@database_sync_to_async
def _stored_remote_ids(run: Run) -> set[str]:
    """The provider ids of what the run stored already (its own: a long thread's others would
    be read for nothing on every run)."""
    return set(Message.objects.filter(run_id=run.pk).exclude(remote_id="").values_list(
        "remote_id", flat=True
    ))  # fmt: skip


@atexit.register
def release_all_leases() -> None:
    """On a clean exit (daphne's SIGTERM included) hand this process's runs over at once,
    instead of leaving them until their leases expire."""
    from django.db import DatabaseError

    if not _driving:
        return
    try:
        leases.release_all(list(_driving))
    except DatabaseError:
        log.warning("could not release run leases at exit; they expire on their own")
