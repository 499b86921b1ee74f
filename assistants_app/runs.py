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

from . import tools
from .engines import get_engine
from .engines.base import Engine, RunUpdate, ToolOutput
from .exceptions import ProviderError, UnknownTool
from .models import ACTIVE_STATUSES, Assistant, Message, Run, RunStatus, Thread

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
        await _ensure_remote_assistant(engine, thread.assistant)
        if not thread.remote_id:
            await engine.ensure_thread(thread)
            await Thread.objects.filter(pk=thread.pk).aupdate(remote_id=thread.remote_id)
        update = await engine.start_run(run, message)
    except ProviderError as error:
        log.warning("run %s failed to start: %s", run.pk, error)
        await record(run, failure(error))
        return
    run.started_at = timezone.now()
    if message.remote_id:
        await Message.objects.filter(pk=message.pk).aupdate(remote_id=message.remote_id)
    await record(run, update)
    if not run.is_terminal:
        await _ring_doorbell(run)


async def _ensure_remote_assistant(engine: Engine, assistant: Assistant) -> None:
    """Create the provider-side assistant nobody synced from admin yet (where there is one)."""
    if assistant.remote_id:
        return
    await engine.sync_assistant(assistant)
    if assistant.remote_id:
        await Assistant.objects.filter(pk=assistant.pk).aupdate(remote_id=assistant.remote_id)


async def _ring_doorbell(run: Run) -> None:
    """Ask the thread's sockets to make sure someone drives the run."""
    await get_channel_layer().group_send(
        run.thread.group_name, {"type": "run.started", "run_id": run.pk}
    )


async def cancel(run: Run) -> None:
    """Ask the provider to stop an active run and record what it answers (usually cancelling;
    polling then sees cancelled). `run.thread.assistant` must be loaded. Raises ProviderError.
    """
    if not run.remote_id:
        # Not started on the provider (its process died first): nothing there to stop.
        await record(run, RunUpdate(status=RunStatus.CANCELLED))
        return
    update = await get_engine(run.thread.assistant).cancel(run)
    if await record(run, update) and not run.is_terminal:
        await _ring_doorbell(run)


def failure(error: ProviderError) -> RunUpdate:
    return RunUpdate(status=RunStatus.FAILED, error_code=error.code, error_message=error.message)


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
    lease_renewed_at = asyncio.get_running_loop().time()
    stored = await _stored_remote_ids(run)
    quiet_polls = errors = 0
    while True:
        if timezone.now() >= deadline:
            await _expire(engine, run)
            return
        try:
            update = await engine.poll(run)
            if update.tool_calls:
                update = await _answer_tool_calls(engine, run, update)
        except ProviderError as error:
            errors += 1
            if not error.retryable or errors >= MAX_CONSECUTIVE_PROVIDER_ERRORS:
                raise
            log.info("run %s: retrying after %s (attempt %s)", run.pk, error.code, errors)
            await asyncio.sleep(retry_delay(errors, error.retry_after))
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
        now = asyncio.get_running_loop().time()
        if now - lease_renewed_at > settings.RUN_LEASE_SECONDS / 3:
            if not await _take_lease(run.pk):
                log.warning("run %s: lease lost to another process; stopping here", run.pk)
                return
            lease_renewed_at = now
        await asyncio.sleep(update.poll_after or poll_delay(quiet_polls))


async def _answer_tool_calls(engine: Engine, run: Run, update: RunUpdate) -> RunUpdate | None:
    """Run the tools the provider asks for, as the thread's owner, and submit their outputs.

    Returns the provider's update after the submission, or None when the run ended here:
    cancelled meanwhile, or failed for asking for a tool its assistant does not have. If the
    submission fails and is retried, the next poll asks again and the tools run again.
    """
    # The page shows "using a tool" while they run.
    if update.status != run.status and not await record(run, update):
        return None
    owner, enabled = run.thread.owner, run.thread.assistant.tools
    try:
        outputs = [
            ToolOutput(call.id, await tools.call(owner, enabled, call.name, call.arguments))
            for call in update.tool_calls
        ]
    except UnknownTool as error:
        log.warning("run %s: %s", run.pk, error)
        await _cancel_quietly(engine, run)
        await record(
            run,
            RunUpdate(status=RunStatus.FAILED, error_code="unknown_tool", error_message=str(error)),
        )
        return None
    return await engine.submit_tool_outputs(run, outputs)


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


async def _cancel_quietly(engine: Engine, run: Run) -> None:
    """Stop the run on the provider, best effort: we are ending it here either way."""
    try:
        await engine.cancel(run)
    except ProviderError as error:
        log.warning("run %s: cancelling it on the provider failed: %s", run.pk, error)


async def _expire(engine: Engine, run: Run) -> None:
    await _cancel_quietly(engine, run)
    await record(
        run,
        RunUpdate(
            status=RunStatus.EXPIRED,
            error_code="expired",
            error_message=(
                f"No answer after {settings.RUN_MAX_SECONDS} seconds; the run was stopped."
            ),
        ),
    )


# --- Database helpers (one query each, off the per-poll path) -------------------------


@database_sync_to_async
def _load(run_id: int) -> Run | None:
    runs = Run.objects.select_related("thread__assistant", "thread__owner")
    return runs.filter(pk=run_id).first()


@database_sync_to_async
def _stored_remote_ids(run: Run) -> set[str]:
    return set(
        Message.objects.filter(thread_id=run.thread_id)
        .exclude(remote_id="")
        .values_list("remote_id", flat=True)
    )


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
