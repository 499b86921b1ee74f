"""The run driver: start a run on its engine, poll it to a terminal status, store what it
says exactly once and push events to the thread's sockets.

Shared by every engine: retries, backoff, persistence and events live here and nowhere else.
A process drives a run only while it holds the run's lease (a row-level claim with an expiry),
so several processes can be asked to drive the same run and exactly one does.
"""

import asyncio
import logging
import os
import random
import socket
import uuid
from datetime import timedelta
from functools import partial

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .engines import get_engine
from .engines.base import Engine, RunUpdate
from .exceptions import ProviderError
from .history import load_history
from .models import ACTIVE_STATUSES, Message, Run, RunStatus, Thread

log = logging.getLogger(__name__)

PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
MAX_CONSECUTIVE_PROVIDER_ERRORS = 8

# run id -> the task driving it in this process. The registry owns the tasks, not the
# sockets: a run goes on being driven after the tab that started it is closed.
_driving: dict[int, asyncio.Task] = {}


# --- Starting -------------------------------------------------------------------------


async def start(run: Run, message: Message) -> None:
    """Start a stored run on its provider and ring the thread's doorbell.

    `run.thread.assistant` must be loaded. A provider error fails the run with its reason;
    the user's message is kept either way.
    """
    thread = run.thread
    try:
        engine = get_engine(thread.assistant)
        if not thread.remote_id:
            await engine.ensure_thread(thread)
            await Thread.objects.filter(pk=thread.pk).aupdate(remote_id=thread.remote_id)
        update = await engine.start_run(run, message)
    except ProviderError as error:
        log.warning("run %s failed to start: %s", run.pk, error)
        await record(run, failure(error))
        return
    run.started_at = timezone.now()
    await record(run, update)
    if not run.is_terminal:
        await get_channel_layer().group_send(
            thread.group_name, {"type": "run.started", "run_id": run.pk}
        )


def failure(error: ProviderError) -> RunUpdate:
    return RunUpdate(status=RunStatus.FAILED, error_code=error.code, error_message=error.message)


# --- Cancelling -----------------------------------------------------------------------


async def cancel(run: Run) -> None:
    """Ask an active run to stop; `run.thread.assistant` must be loaded.

    A run executed locally (chat) is marked cancelling: whichever process generates it sees
    that within CHAT_CANCEL_CHECK_SECONDS, stops, and stores what was said so far, marked as
    stopped. Other engines ask their provider, and the driver polls on to the final status.
    """
    engine = get_engine(run.thread.assistant)
    if engine.executes_locally:
        await record(run, RunUpdate(status=RunStatus.CANCELLING))
    else:
        await record(run, await engine.cancel(run))
    if not run.is_terminal:
        # Nobody may be driving it (no page open): then this process finishes it.
        ensure_driving(run.pk)


# --- Storing --------------------------------------------------------------------------


@database_sync_to_async
def record(run: Run, update: RunUpdate) -> bool:
    """Store an update and push its events after commit. False if the run had already ended.

    New assistant messages are stored once each: the unique (thread, remote_id) key makes a
    second writer, in this process or another, find the row instead of adding one.
    """
    with transaction.atomic():
        new_messages = []
        for remote in update.messages:
            message, created = Message.objects.get_or_create(
                thread_id=run.thread_id,
                remote_id=remote.remote_id,
                defaults={"role": Message.Role.ASSISTANT, "text": remote.text, "run": run},
            )
            if created:
                new_messages.append(message)
        changes = {"status": update.status, "remote_id": run.remote_id}
        if run.started_at:
            changes["started_at"] = run.started_at
        if update.usage:
            changes.update(
                input_tokens=update.usage.input_tokens,
                output_tokens=update.usage.output_tokens,
                total_tokens=update.usage.total_tokens,
            )
        if update.status not in ACTIVE_STATUSES:
            changes.update(
                finished_at=timezone.now(),
                error_code=update.error_code,
                error_message=update.error_message,
                lease_owner="",
                lease_expires_at=None,
            )
        still_active = Run.objects.filter(pk=run.pk).active().update(**changes)
        if still_active:
            for name, value in changes.items():
                setattr(run, name, value)
        if new_messages:
            Thread.objects.filter(pk=run.thread_id).update(updated_at=timezone.now())
        events = [{"type": "message.created", "message": m.as_event()} for m in new_messages]
        if still_active:
            events.append({"type": "run.status", "run": run.as_event()})
        transaction.on_commit(partial(broadcast, run.thread.group_name, events))
    return bool(still_active)


def broadcast(group: str, events: list[dict]) -> None:
    """Send events to a thread's sockets. A doorbell: a lost event is replayed on `hello`."""
    send = async_to_sync(get_channel_layer().group_send)
    for event in events:
        send(group, event)


# --- Driving --------------------------------------------------------------------------


def ensure_driving(run_id: int) -> asyncio.Task:
    """Drive the run from this process unless a task here already does."""
    task = _driving.get(run_id)
    if task and not task.done() and task.get_loop() is asyncio.get_running_loop():
        return task
    task = asyncio.create_task(drive(run_id), name=f"drive-run-{run_id}")
    _driving[run_id] = task
    task.add_done_callback(partial(_forget, run_id))
    return task


def _forget(run_id: int, task: asyncio.Task) -> None:
    if _driving.get(run_id) is task:
        del _driving[run_id]
    if not task.cancelled() and task.exception():
        log.error("driving run %s ended with an error", run_id, exc_info=task.exception())


async def stop_driving(timeout: float = 5.0) -> None:
    """Cancel this process's driver tasks and release their leases (shutdown, tests)."""
    tasks = [task for task in _driving.values() if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)


async def drive(run_id: int) -> None:
    """Poll a run until it is terminal; return at once if another process holds its lease."""
    run = await _load(run_id)
    if run is None or run.is_terminal or not await _take_lease(run_id):
        return
    try:
        if not run.remote_id:
            # The process that stored the run died before the provider heard of it.
            await record(run, _interrupted())
            return
        await _poll_until_terminal(get_engine(run.thread.assistant), run)
    except ProviderError as error:
        await record(run, failure(error))
    finally:
        await _release_lease(run_id)


async def _poll_until_terminal(engine: Engine, run: Run) -> None:
    deadline = run.created_at + timedelta(seconds=settings.RUN_MAX_SECONDS)
    lease_renewed_at: float | None = asyncio.get_running_loop().time()
    stored = await _stored_remote_ids(run)
    quiet_polls = errors = 0
    while True:
        if timezone.now() >= deadline:
            await _expire(engine, run)
            return
        try:
            if engine.executes_locally:
                update = await _generate(engine, run, deadline)
                if update is None:
                    return
            else:
                update = await engine.poll(run)
        except ProviderError as error:
            errors += 1
            if not error.retryable or errors >= MAX_CONSECUTIVE_PROVIDER_ERRORS:
                raise
            log.info("run %s: retrying after %s (attempt %s)", run.pk, error.code, errors)
            await asyncio.sleep(retry_delay(errors, error.retry_after))
            continue
        errors = 0
        if _is_news(run, update, stored):
            quiet_polls = 0
            stored.update(m.remote_id for m in update.messages)
            if not await record(run, update) or run.is_terminal:
                return
        else:
            quiet_polls += 1
        lease_renewed_at = await _renew_lease_when_due(run, lease_renewed_at)
        if lease_renewed_at is None:
            return
        await asyncio.sleep(update.poll_after or poll_delay(quiet_polls))


async def _generate(engine: Engine, run: Run, deadline) -> RunUpdate | None:
    """The whole answer of a locally executed run (chat), generated in this process.

    While it streams, the lease is renewed and the stored status looked at every
    CHAT_CANCEL_CHECK_SECONDS, so a cancel from any process stops it with what was said so
    far. None when there is nothing more to do here: the run expired (recorded) or another
    process took it over.
    """
    status = await _begin_generation(run)
    if status == RunStatus.CANCELLING:
        return await engine.cancel(run)  # cancelled before it started: nothing to keep
    if status != RunStatus.IN_PROGRESS:
        return None  # finished by another process meanwhile
    history = await database_sync_to_async(load_history)(run, settings.CHAT_HISTORY_MAX_CHARS)
    generation = asyncio.create_task(engine.generate(run, history), name=f"generate-{run.pk}")
    lease_renewed_at: float | None = asyncio.get_running_loop().time()
    try:
        while True:
            await asyncio.wait([generation], timeout=settings.CHAT_CANCEL_CHECK_SECONDS)
            if generation.done():
                return generation.result()
            if timezone.now() >= deadline:
                await _stop(generation)
                await _expire(engine, run)
                return None
            if await _status_of(run.pk) == RunStatus.CANCELLING:
                await _stop(generation)
                return await engine.cancel(run)
            lease_renewed_at = await _renew_lease_when_due(run, lease_renewed_at)
            if lease_renewed_at is None:
                return None
    finally:
        generation.cancel()  # this task was cancelled (shutdown) or gave up on the run


async def _stop(generation: asyncio.Task) -> None:
    """Cancel a generation and wait until it has closed its stream."""
    generation.cancel()
    await asyncio.wait([generation])


async def _renew_lease_when_due(run: Run, renewed_at: float) -> float | None:
    """Renew the lease once a third of it has passed: when it was renewed, None if lost."""
    now = asyncio.get_running_loop().time()
    if now - renewed_at <= settings.RUN_LEASE_SECONDS / 3:
        return renewed_at
    if not await _take_lease(run.pk):
        log.warning("run %s: lease lost to another process; stopping here", run.pk)
        return None
    return now


def poll_delay(quiet_polls: int) -> float:
    """Start fast, then back off while nothing changes."""
    return min(settings.RUN_POLL_MAX_SECONDS, settings.RUN_POLL_FIRST_SECONDS * 2**quiet_polls)


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """The provider's Retry-After when given; otherwise exponential backoff with jitter."""
    if retry_after is not None:
        return retry_after
    return min(30.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def _is_news(run: Run, update: RunUpdate, stored: set[str]) -> bool:
    return update.status != run.status or any(m.remote_id not in stored for m in update.messages)


def _interrupted() -> RunUpdate:
    return RunUpdate(
        status=RunStatus.FAILED,
        error_code="interrupted",
        error_message="The run was interrupted before the provider received it.",
    )


async def _expire(engine: Engine, run: Run) -> None:
    said_so_far = []
    try:
        said_so_far = (await engine.cancel(run)).messages
    except ProviderError as error:
        log.warning("run %s: cancel after expiry failed: %s", run.pk, error)
    await record(
        run,
        RunUpdate(
            status=RunStatus.EXPIRED,
            messages=said_so_far,
            error_code="expired",
            error_message=(
                f"No answer after {settings.RUN_MAX_SECONDS} seconds; the run was stopped."
            ),
        ),
    )


# --- Database helpers (one query each, off the per-poll path) -------------------------


@database_sync_to_async
def _load(run_id: int) -> Run | None:
    return Run.objects.select_related("thread__assistant").filter(pk=run_id).first()


@database_sync_to_async
def _stored_remote_ids(run: Run) -> set[str]:
    return set(
        Message.objects.filter(thread_id=run.thread_id)
        .exclude(remote_id="")
        .values_list("remote_id", flat=True)
    )


def _stored_status(run_id: int) -> str | None:
    return Run.objects.filter(pk=run_id).values_list("status", flat=True).first()


_status_of = database_sync_to_async(_stored_status)


@database_sync_to_async
def _begin_generation(run: Run) -> str:
    """queued -> in_progress, pushed to the sockets; the run's status either way.

    Conditional, so a cancel stored a moment earlier is not overwritten.
    """
    with transaction.atomic():
        if Run.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
            status=RunStatus.IN_PROGRESS
        ):
            run.status = RunStatus.IN_PROGRESS
            event = {"type": "run.status", "run": run.as_event()}
            transaction.on_commit(partial(broadcast, run.thread.group_name, [event]))
            return run.status
    return _stored_status(run.pk)


@database_sync_to_async
def _take_lease(run_id: int) -> bool:
    """Claim or renew the run for this process; false if another process holds it."""
    now = timezone.now()
    return bool(
        Run.objects.filter(pk=run_id)
        .active()
        .filter(Q(lease_owner=PROCESS_ID) | Q(lease_expires_at=None) | Q(lease_expires_at__lt=now))
        .update(
            lease_owner=PROCESS_ID,
            lease_expires_at=now + timedelta(seconds=settings.RUN_LEASE_SECONDS),
        )
    )


@database_sync_to_async
def _release_lease(run_id: int) -> None:
    Run.objects.filter(pk=run_id, lease_owner=PROCESS_ID).update(
        lease_owner="", lease_expires_at=None
    )
