"""The run driver: start a run on its engine, poll it to a terminal status, store what it
says exactly once and push events to the thread's sockets.

Shared by every engine: retries, backoff, persistence and events live here and nowhere else.
A process drives a run only while it holds the run's lease (a row-level claim with an expiry),
so several processes can be asked to drive the same run and exactly one does.
"""

import asyncio
import atexit
import contextlib
import contextvars
import logging
import os
import random
import socket
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError, DataError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from . import storable, tools, usage
from .db import database_sync_to_async
from .engines import get_engine
from .engines.base import Engine, RemoteMessage, RunUpdate, StreamEvent, ToolOutput, Turn, Usage
from .exceptions import ProviderError, UnknownTool
from .history import History, fit_history, fitting_tokens, load_history, shorter
from .models import ACTIVE_STATUSES, Assistant, Message, Run, RunStatus, Thread

# An answer stored with one of these statuses was cut short, and is shown as such.
CUT_SHORT_STATUSES = {
    RunStatus.CANCELLED, RunStatus.INCOMPLETE, RunStatus.FAILED, RunStatus.EXPIRED
}  # fmt: skip

log = logging.getLogger(__name__)

PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
# While a run is being started nobody may drive it, this process included: a run without a
# provider id would look like one whose start was interrupted.
STARTING = f"{PROCESS_ID}:starting"
MAX_CONSECUTIVE_PROVIDER_ERRORS = 8
START_ATTEMPTS = 3
STREAM_ATTEMPTS = 3  # streams opened for one run before it falls back to polling
# Errors after which the provider has certainly not acted on the request, so sending it again
# cannot start a second answer.
RESEND_SAFE_CODES = {"rate_limited", "conversation_locked"}


@dataclass
class _Driver:
    task: asyncio.Task
    wake: asyncio.Event  # set when someone asks again: try for the lease now


# run id -> its driver in this process. The registry owns the tasks, not the sockets: a run
# goes on being driven after the tab that started it is closed.
_driving: dict[int, _Driver] = {}


# --- Starting -------------------------------------------------------------------------


async def start(run: Run, message: Message) -> None:
    """Start a stored run on its provider and ring the thread's doorbell.

    `run.thread.assistant` must be loaded. A provider error fails the run with its reason;
    the user's message is kept either way. A database error (SQLite busy past every retry)
    hands the run on: the next driver, a socket's or the worker's, carries on from what was
    stored, or fails it as interrupted if the provider's id was not.
    """
    try:
        await _start(run, message)
    except DataError:
        # A value the database refuses (a provider's id with a NUL, on PostgreSQL): the next
        # driver would meet it again, so the run fails now, with the reason.
        log.exception("run %s: the provider's answer could not be stored", run.pk)
        await record(run, UNSTORABLE)
    except DatabaseError as error:
        log.error("run %s: a database error stopped its start (%s); handing it on", run.pk, error)
        await _hand_on(run.pk, owner=STARTING)


async def _start(run: Run, message: Message) -> None:
    try:
        engine = get_engine(run.thread.assistant)
        update = await _start_on_provider(engine, run, message)
    except ProviderError as error:
        log.warning("run %s failed to start: %s", run.pk, error)
        await record(run, failure(error))
        return
    except DatabaseError:
        raise  # ours, not the provider's: start() hands the run on
    except Exception:
        # Whatever went wrong, the run ends here with a reason and the thread is free again:
        # never a 500 for the message, never a thread busy with a run nobody drives.
        log.exception("run %s: unexpected error while starting it", run.pk)
        await record(run, failure(UNEXPECTED))
        return
    run.started_at = timezone.now()
    if message.remote_id:
        await Message.objects.filter(pk=message.pk).aupdate(remote_id=message.remote_id)
    if not await record(run, update):
        # Stopped while it was being started, before anyone could know its provider id: stop
        # it there too, or it would go on with nobody watching (and keep the thread busy).
        await engine.close_stream(run)
        await _cancel_quietly(engine, run)
        return
    if engine.holds_stream(run) and not run.is_terminal and await _keep_starting_lease(run.pk):
        # The run's stream was opened by this process and can be followed from here only.
        ensure_driving(run.pk)
    else:
        await engine.close_stream(run)
        await _release_lease(run.pk, owner=STARTING)
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

    A run executed locally (chat) is only marked cancelling: whichever process generates it
    sees that within CHAT_CANCEL_CHECK_SECONDS, stops, and stores what was said so far.
    """
    if not run.remote_id:
        # Not started on the provider (its process died first): nothing there to stop.
        await record(run, RunUpdate(status=RunStatus.CANCELLED))
        return
    engine = get_engine(run.thread.assistant)
    if engine.runs_here(run):
        update = RunUpdate(status=RunStatus.CANCELLING)
    else:
        update = await engine.cancel(run)
    if await record(run, update) and not run.is_terminal:
        await _ring_doorbell(run)


def starting_lease() -> dict:
    """Lease fields for a run about to be started by this process (see STARTING)."""
    window = settings.RUN_LEASE_SECONDS + 2 * settings.PROVIDER_TIMEOUT_SECONDS
    return {"lease_owner": STARTING, "lease_expires_at": timezone.now() + timedelta(seconds=window)}


async def _start_on_provider(engine: Engine, run: Run, message: Message) -> RunUpdate:
    thread = run.thread
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            await _ensure_remote_assistant(engine, thread.assistant)
            if not thread.remote_id:
                await engine.ensure_thread(thread)
                await _save_remote_thread_id(thread)
            return await engine.start_run(run, message)
        except ProviderError as error:
            if error.code not in RESEND_SAFE_CODES or attempt == START_ATTEMPTS:
                raise
            log.info("run %s: start refused (%s); trying again", run.pk, error.code)
            await asyncio.sleep(retry_delay(attempt, error.retry_after))


UNEXPECTED = ProviderError(
    "unexpected_error",
    "Something unexpected went wrong with this answer (it is in the site's log). Try again.",
)


def failure(error: ProviderError) -> RunUpdate:
    return RunUpdate(status=RunStatus.FAILED, error_code=error.code, error_message=error.message)


# --- Storing --------------------------------------------------------------------------


UNSTORABLE = RunUpdate(
    status=RunStatus.FAILED,
    error_code="unstorable_answer",
    error_message="The provider's answer could not be saved, so the run was stopped.",
)


async def record(run: Run, update: RunUpdate) -> bool:
    """Store an update and push its events after commit. False if the run had already ended.

    New assistant messages are stored once each: the unique (thread, remote_id) key makes a
    second writer, in this process or another, find the row instead of adding one.
    """
    if update.usage is None and update.messages and update.status not in ACTIVE_STATUSES:
        update = await _with_estimated_usage(run, update)
    committed: list[dict] = []
    try:
        still_active = await _store(run, update, committed)
    except (DataError, ValueError, UnicodeError):
        # A write that can never succeed (a provider's id the database refuses, say): retrying
        # would only keep the thread busy until the run expires. Fail the run with the reason.
        log.exception("run %s: the provider's answer could not be stored", run.pk)
        run.remote_id = storable.mend(run.remote_id)
        update = UNSTORABLE
        still_active = await _store(run, update, committed)
    # Sent from the event loop, not from the database thread: waiting there on the channel
    # layer would hold up every other socket's and run's database work in this process.
    await broadcast(run.thread.group_name, committed)
    return still_active


async def _with_estimated_usage(run: Run, update: RunUpdate) -> RunUpdate:
    """The update with its tokens counted here, for a provider that reports none (llama.cpp's
    server ignores `include_usage`), so budgets and the usage report count them: by the
    provider's tokenizer where it has one, else estimated (Engine.count_tokens)."""
    try:
        assistant = run.thread.assistant
        engine = get_engine(assistant)
        async with asyncio.timeout(settings.PROVIDER_TIMEOUT_SECONDS):
            turns = await database_sync_to_async(load_history)(run, settings.CHAT_HISTORY_MAX_CHARS)
            prompt = "\n".join([assistant.instructions, *(turn.text for turn in turns)])
            answer = "\n".join(message.text for message in update.messages)
            input_tokens = await engine.count_tokens(assistant, prompt)
            output_tokens = await engine.count_tokens(assistant, answer)
    except Exception:  # noqa: BLE001 - counting is a nicety: the answer is stored regardless
        log.warning("run %s: could not count its tokens", run.pk, exc_info=True)
        return update
    usage = Usage(input_tokens, output_tokens, input_tokens + output_tokens, estimated=True)
    return replace(update, usage=usage)


@database_sync_to_async
def _store(run: Run, update: RunUpdate, committed: list[dict]) -> bool:
    """The update's rows, in one transaction; its events go to `committed` once it commits."""
    with transaction.atomic():
        changes = {"status": update.status, "remote_id": run.remote_id}
        if run.started_at:
            changes["started_at"] = run.started_at
        if update.usage:
            changes.update(
                input_tokens=update.usage.input_tokens,
                output_tokens=update.usage.output_tokens,
                total_tokens=update.usage.total_tokens,
                usage_estimated=update.usage.estimated,
            )
        if run.note:
            changes["note"] = run.note
        if update.status not in ACTIVE_STATUSES:
            changes.update(
                finished_at=timezone.now(),
                error_code=update.error_code,
                error_message=storable.mend(update.error_message),
                lease_owner="",
                lease_expires_at=None,
                partial_text="",
            )
        # The run's row first: a write before any read keeps SQLite from refusing to turn a
        # reading transaction into a writing one under concurrent writers.
        still_active = Run.objects.filter(pk=run.pk).active().update(**changes)
        if still_active:
            for name, value in changes.items():
                setattr(run, name, value)
            usage.settle(run)
        new_messages = []
        # A run that had ended (stopped while its provider went on writing) stores no more.
        for remote in update.messages if still_active else []:
            message, created = Message.objects.get_or_create(
                thread_id=run.thread_id,
                remote_id=remote.remote_id,
                defaults={
                    "role": Message.Role.ASSISTANT,
                    "text": storable.mend(remote.text),
                    "run": run,
                    "is_partial": update.status in CUT_SHORT_STATUSES,
                },
            )
            if created:
                new_messages.append(message)
        if new_messages:
            Thread.objects.filter(pk=run.thread_id).update(updated_at=timezone.now())
        events = [{"type": "message.created", "message": m.as_event()} for m in new_messages]
        if still_active:
            events.append({"type": "run.status", "run": run.as_event()})
        transaction.on_commit(partial(committed.extend, events))
    return bool(still_active)


async def broadcast(group: str, events: list[dict]) -> None:
    """Send events to a thread's sockets. A doorbell: a lost event is replayed on `hello`."""
    for event in events:
        await get_channel_layer().group_send(group, event)


# --- Driving --------------------------------------------------------------------------


def ensure_driving(run_id: int, standby: bool = True) -> asyncio.Task:
    """Drive the run from this process unless a task here already does.

    With `standby`, a run whose lease another process holds is watched, and taken over when
    that lease runs out (the other process died); without, the call is a one-off attempt.
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
        drive(run_id, wake, standby), name=f"drive-run-{run_id}", context=contextvars.Context()
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
        .filter(Q(lease_expires_at=None) | Q(lease_expires_at__lt=timezone.now()))
        .exclude(pk__in=list(_driving))
        .values_list("pk", flat=True)
    )


async def drive(run_id: int, wake: asyncio.Event | None = None, standby: bool = False) -> None:
    """Poll a run until it is terminal, once this process holds its lease."""
    run = await _load(run_id)
    if run is None or run.is_terminal:
        return
    if not await _take_lease(run_id) and not (standby and await _await_lease(run_id, wake)):
        return
    engine = None
    try:
        if not run.remote_id:
            # The process that stored the run died before the provider heard of it.
            await record(run, _interrupted())
            return
        engine = get_engine(run.thread.assistant)
        await _poll_until_terminal(engine, run)
    except ProviderError as error:
        await record(run, failure(error))
    except DatabaseError as error:
        await _end_after_database_error(run, error)
    except Exception:
        log.exception("run %s: unexpected error while driving it", run_id)
        await record(run, failure(UNEXPECTED))
    finally:
        if engine is not None:
            await engine.close_stream(run)  # held for a stream this driver did not follow
        await _hand_on(run_id)


async def _end_after_database_error(run: Run, error: DatabaseError) -> None:
    """A database error stopped this driver. A busy or lost database may well answer the next
    driver: the run is handed on (its lease released; the worker or a socket takes it up). A
    write that cannot succeed would fail the same way again: the run fails with a reason,
    unless even that cannot be stored."""
    if isinstance(error, OperationalError):
        log.warning("run %s: database error (%s); handing the run on", run.pk, error)
        return
    log.error("run %s: its progress could not be stored (%s); failing it", run.pk, error)
    try:
        await record(
            run,
            RunUpdate(
                status=RunStatus.FAILED,
                error_code="storage_failed",
                error_message="The answer could not be saved. Try again.",
            ),
        )
    except DatabaseError:
        log.exception("run %s: its failure could not be stored either; handing it on", run.pk)


async def _hand_on(run_id: int, owner: str = PROCESS_ID) -> None:
    """Release the run's lease for the next driver; if even that fails, it expires."""
    try:
        await _release_lease(run_id, owner=owner)
    except DatabaseError as error:
        log.warning(
            "run %s: lease not released (%s); another driver takes over in %s s",
            run_id, error, settings.RUN_LEASE_SECONDS,
        )  # fmt: skip


async def _poll_until_terminal(engine: Engine, run: Run) -> None:
    # Counted from when the provider accepted the run: our own slowness is not its fault.
    deadline = (run.started_at or run.created_at) + timedelta(seconds=settings.RUN_MAX_SECONDS)
    if engine.streams and settings.RUN_STREAMING and not engine.runs_here(run):
        # Streaming is the fast path; polling below stays the durable one.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(_loop_time_at(deadline)):
                if await follow_stream(engine, run):
                    return
    lease_renewed_at: float | None = asyncio.get_running_loop().time()
    stored = await _stored_remote_ids(run)
    quiet_polls = errors = 0
    while True:
        if timezone.now() >= deadline:
            await _expire(engine, run)
            return
        try:
            if engine.runs_here(run):
                update = await _generate(engine, run, deadline)
            else:
                update = await engine.poll(run)
                if update.tool_calls:
                    update = await _answer_tool_calls(engine, run, update)
        except ProviderError as error:
            errors += 1
            if not error.retryable or errors >= MAX_CONSECUTIVE_PROVIDER_ERRORS:
                raise
            log.info("run %s: retrying after %s (attempt %s)", run.pk, error.code, errors)
            # Never sleep past the deadline: a run stuck behind errors still ends in time.
            seconds_left = (deadline - timezone.now()).total_seconds()
            await asyncio.sleep(max(0.0, min(retry_delay(errors, error.retry_after), seconds_left)))
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
        lease_renewed_at = await _renew_lease_when_due(run, lease_renewed_at)
        if lease_renewed_at is None:
            return
        await asyncio.sleep(update.poll_after or poll_delay(quiet_polls))


# --- Streaming ------------------------------------------------------------------------


class LiveText:
    """The answer being written for one run: sent to sockets as coalesced `message.delta`
    events, saved now and then so that a reload or another process can resume it."""

    def __init__(self, run: Run):
        self.run = run
        self.text = run.partial_text
        self.sequence = run.stream_sequence
        self.item_id = ""
        self.sent = len(self.text)  # characters already pushed to sockets
        self.saved_at = self.pushed_at = 0.0
        self.lease_renewed_at = asyncio.get_running_loop().time()  # taken just before

    @property
    def unsent(self) -> bool:
        return self.sent < len(self.text)

    def flush_due_in(self) -> float | None:
        """Seconds until unsent text must go out (None: nothing waits)."""
        if not self.unsent:
            return None
        elapsed = asyncio.get_running_loop().time() - self.pushed_at
        return max(0.0, settings.STREAM_DELTA_SECONDS - elapsed)

    def wake_in(self) -> float:
        """Seconds until the follower must act without waiting for an event: to send text
        that waited long enough, or to renew the lease (a long answer outlasts it)."""
        elapsed = asyncio.get_running_loop().time() - self.lease_renewed_at
        renew_in = max(0.0, settings.RUN_LEASE_SECONDS / 3 - elapsed)
        flush_in = self.flush_due_in()
        return renew_in if flush_in is None else min(flush_in, renew_in)

    async def hold_lease(self) -> bool:
        """Renew the run's lease when due; false once another process has taken it over."""
        renewed_at = await _renew_lease_when_due(self.run, self.lease_renewed_at)
        if renewed_at is None:
            return False
        self.lease_renewed_at = renewed_at
        return True

    async def add(self, event: StreamEvent) -> None:
        self.text += storable.mend(event.delta)
        self.item_id = event.item_id or self.item_id
        if event.sequence is not None:
            self.sequence = event.sequence
        if self.flush_due_in() == 0:
            await self.push()

    async def push(self) -> None:
        now = asyncio.get_running_loop().time()
        if self.unsent:
            event = self.delta_event(self.sent)
            self.sent, self.pushed_at = len(self.text), now
            await get_channel_layer().group_send(self.run.thread.group_name, event)
        if now - self.saved_at >= settings.STREAM_SAVE_SECONDS:
            self.saved_at = now
            await _save_partial(self.run.pk, self.text, self.sequence)

    def delta_event(self, offset: int = 0) -> dict:
        """Text from `offset` on; a client with fewer characters than `offset` missed some."""
        return {
            "type": "message.delta",
            "run_id": self.run.pk,
            "offset": offset,
            "text": self.text[offset:],
        }

    def as_message(self) -> RemoteMessage:
        return RemoteMessage(remote_id=self.item_id or f"run-{self.run.pk}", text=self.text)


# run id -> the text being streamed for it in this process (for replay on `hello`)
_live: dict[int, LiveText] = {}


def live_delta(run: Run) -> dict | None:
    """The `message.delta` that brings a new client up to date on an active run's answer."""
    live = _live.get(run.pk)
    if live is not None:
        return live.delta_event()
    if run.partial_text:
        return {"type": "message.delta", "run_id": run.pk, "offset": 0, "text": run.partial_text}
    return None


async def follow_stream(engine: Engine, run: Run) -> bool:
    """Stream the run, resuming after breaks; true once it is terminal and recorded, false
    when streaming gave out and polling must take over."""
    live = _live[run.pk] = LiveText(run)
    try:
        for _ in range(STREAM_ATTEMPTS):
            try:
                if await _follow_once(engine, run, live):
                    return True
            except ProviderError as error:
                log.info("run %s: stream failed (%s)", run.pk, error.code)
                if not error.retryable:
                    return False
            await live.push()
            # The stream ended early: unless the run ended meanwhile, resume it.
            try:
                update = await engine.poll(run)
            except ProviderError:
                return False  # the polling loop has the patience for this
            if update.status not in ACTIVE_STATUSES:
                await _finish(run, update, live)
                return True
        return False
    finally:
        await live.push()
        del _live[run.pk]


async def _follow_once(engine: Engine, run: Run, live: LiveText) -> bool:
    """Follow one stream of the run: true once the run is terminal and recorded, false if the
    stream ended first. A run that asks for tools goes on in the stream their outputs open."""
    asking_for_tools = None
    async for event in _ticking(engine.stream(run, live.sequence), live.wake_in):
        if not await live.hold_lease():
            return True  # another process drives the run now: nothing more to do here
        if event is None:
            await live.push()  # text waited long enough: send it
        elif event.delta:
            await live.add(event)
        elif event.update is not None:
            live.sequence = event.sequence if event.sequence is not None else live.sequence
            if event.update.status not in ACTIVE_STATUSES:
                await live.push()
                await _finish(run, event.update, live)
                return True
            if event.update.tool_calls:
                asking_for_tools = event.update
                break
            if event.update.status != run.status:
                await record(run, event.update)
    if asking_for_tools is None:
        return False
    await live.push()
    update = await _answer_tool_calls(engine, run, asking_for_tools, stream=True)
    if update is None:
        return True  # the run ended here
    if update.status != run.status:
        await record(run, update)
    return await _follow_once(engine, run, live)


async def _finish(run: Run, update: RunUpdate, live: LiveText) -> None:
    """Record the end; an answer the provider did not return is kept from what was streamed."""
    if not update.messages and live.text:
        update = replace(update, messages=[live.as_message()])
    await record(run, update)


async def _ticking(events, timeout_of):
    """Yield the stream's events, and None whenever `timeout_of()` seconds pass without one."""
    queue: asyncio.Queue = asyncio.Queue()
    finished = object()

    async def read():
        try:
            async for event in events:
                await queue.put(event)
            await queue.put(finished)
        except Exception as error:  # handed to the reader's side, raised there
            await queue.put(error)

    reader = asyncio.create_task(read())
    try:
        while True:
            try:
                # Not wait_for: on Python 3.11 that makes a task per event.
                async with asyncio.timeout(timeout_of()):
                    item = await queue.get()
            except TimeoutError:
                yield None
                continue
            if item is finished:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        reader.cancel()


def _loop_time_at(moment) -> float:
    loop = asyncio.get_running_loop()
    return loop.time() + (moment - timezone.now()).total_seconds()


# --- Generating here (Chat Completions) -----------------------------------------------


async def _generate(engine: Engine, run: Run, deadline) -> RunUpdate | None:
    """The whole answer of a locally executed run (chat), generated in this process.

    Its text goes to the sockets as it comes, like a streamed run's (LiveText). Meanwhile the
    lease is renewed and the stored status looked at every CHAT_CANCEL_CHECK_SECONDS, so a
    cancel from any process stops it with what was said so far. None when there is nothing
    more to do here: the run expired (recorded) or another process took it over.
    """
    committed: list[dict] = []
    status = await _begin_generation(run, committed)
    await broadcast(run.thread.group_name, committed)
    if status == RunStatus.CANCELLING:
        return await engine.cancel(run)  # cancelled before it started: nothing to keep
    if status != RunStatus.IN_PROGRESS:
        return None  # finished by another process meanwhile
    try:
        context = await engine.context_tokens(run.thread.assistant)
    except ProviderError:
        context = None  # it does not answer: the generation fails at once and says why
    history = await database_sync_to_async(fit_history)(
        run, settings.CHAT_HISTORY_MAX_CHARS, context
    )
    run.note = history.note
    run.partial_text = ""  # a generation starts over: an earlier process's text is replaced
    live = _live[run.pk] = LiveText(run)

    def generating(turns: list[Turn]) -> asyncio.Task:
        return asyncio.create_task(
            engine.generate(run, turns, on_text=lambda text: live.add(StreamEvent(delta=text))),
            name=f"generate-{run.pk}",
        )

    generation = generating(history.turns)
    tried_shorter = False
    loop = asyncio.get_running_loop()
    checked_at = loop.time()
    lease_renewed_at: float | None = checked_at
    try:
        while True:
            await asyncio.wait([generation], timeout=settings.STREAM_DELTA_SECONDS)
            if generation.done():
                update = generation.result()
                if tried_shorter or not _did_not_fit(update, live, history, context):
                    return update
                # Once more with the newest half of the history; the page is told.
                log.info(
                    "run %s: history did not fit (%s); sending less", run.pk, update.error_code
                )
                tried_shorter, history = True, shorter(history)
                run.note = history.note
                generation = generating(history.turns)
                continue
            if live.unsent:
                await live.push()  # text that waited long enough
            if loop.time() - checked_at < settings.CHAT_CANCEL_CHECK_SECONDS:
                continue
            checked_at = loop.time()
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
        del _live[run.pk]


def _did_not_fit(update: RunUpdate, live: LiveText, history: History, context) -> bool:
    """Whether a generation failed for a prompt longer than the model's context, so that a
    shorter history may succeed. Most servers say so; some answer 200 and then drop the
    stream (llama-cpp-python): a stream that broke before its first word, on a history that
    fills much of the context (or an unknown one), is taken for that."""
    if live.text or len(history.turns) < 2 or update.status != RunStatus.FAILED:
        return False
    if update.error_code == "context_overflow":
        return True
    if update.error_code not in ("stream_broken", "connection_error", "stream_error"):
        return False
    used = sum(fitting_tokens(turn.text) for turn in history.turns)
    return context is None or used >= context // 2


async def _stop(generation: asyncio.Task) -> None:
    """Cancel a generation and wait until it has closed its stream."""
    generation.cancel()
    await asyncio.wait([generation])


async def _renew_lease_when_due(run: Run, renewed_at: float) -> float | None:
    """Renew the lease once a third of it has passed: when it was renewed, None if lost."""
    now = asyncio.get_running_loop().time()
    if now - renewed_at < settings.RUN_LEASE_SECONDS / 3:
        return renewed_at
    if not await _take_lease(run.pk):
        log.warning("run %s: lease lost to another process; stopping here", run.pk)
        return None
    return now


async def _answer_tool_calls(
    engine: Engine, run: Run, update: RunUpdate, stream: bool = False
) -> RunUpdate | None:
    """Run the tools the provider asks for, as the thread's owner, and submit their outputs
    (asking for the run's stream from there on, with `stream`).

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
    return await engine.submit_tool_outputs(run, outputs, stream=stream)


async def _await_lease(run_id: int, wake: asyncio.Event | None) -> bool:
    """Stand by while another process drives the run; true once the lease is ours."""
    wake = wake or asyncio.Event()
    while await _is_active(run_id):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=settings.RUN_LEASE_SECONDS / 3)
        wake.clear()
        if await _take_lease(run_id):
            return True
    return False


def poll_delay(quiet_polls: int) -> float:
    """Start fast, then back off while nothing changes (or a fixed interval, if so set)."""
    if settings.RUN_POLL_STRATEGY == "fixed":
        return settings.RUN_POLL_FIXED_SECONDS
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
    said_so_far = []
    if engine.runs_here(run):
        # The generation was stopped here: what it had said is kept, as a partial answer.
        said_so_far = (await engine.cancel(run)).messages
    else:
        await _cancel_quietly(engine, run)
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
    runs = Run.objects.select_related("thread__assistant", "thread__owner")
    return runs.filter(pk=run_id).first()


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
def _begin_generation(run: Run, committed: list[dict]) -> str:
    """queued -> in_progress, its event to `committed` once stored; the run's status either way.

    Conditional, so a cancel stored a moment earlier is not overwritten.
    """
    with transaction.atomic():
        if Run.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
            status=RunStatus.IN_PROGRESS
        ):
            run.status = RunStatus.IN_PROGRESS
            event = {"type": "run.status", "run": run.as_event()}
            transaction.on_commit(partial(committed.extend, [event]))
            return run.status
    return _stored_status(run.pk)


@database_sync_to_async
def _save_remote_thread_id(thread: Thread) -> None:
    # Not the async ORM: its connection would stay checked out of the pool through the
    # provider call that follows, and under load the pool's other users queue behind it.
    Thread.objects.filter(pk=thread.pk).update(remote_id=thread.remote_id)


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
def _keep_starting_lease(run_id: int) -> bool:
    """Turn this process's starting lease into a driving one; false if it was lost meanwhile."""
    return bool(
        Run.objects.filter(pk=run_id, lease_owner=STARTING).update(
            lease_owner=PROCESS_ID,
            lease_expires_at=timezone.now() + timedelta(seconds=settings.RUN_LEASE_SECONDS),
        )
    )


@database_sync_to_async
def _save_partial(run_id: int, text: str, sequence: int | None) -> None:
    Run.objects.filter(pk=run_id).active().update(partial_text=text, stream_sequence=sequence)


@database_sync_to_async
def _is_active(run_id: int) -> bool:
    return Run.objects.filter(pk=run_id).active().exists()


@database_sync_to_async
def _release_lease(run_id: int, owner: str = PROCESS_ID) -> None:
    Run.objects.filter(pk=run_id, lease_owner=owner).update(lease_owner="", lease_expires_at=None)


@atexit.register
def release_all_leases() -> None:
    """On a clean exit (daphne's SIGTERM included) hand this process's runs over at once,
    instead of leaving them until their leases expire."""
    from django.db import DatabaseError

    if not _driving:
        return
    try:
        Run.objects.filter(pk__in=list(_driving), lease_owner=PROCESS_ID).update(
            lease_owner="", lease_expires_at=None
        )
    except DatabaseError:
        log.warning("could not release run leases at exit; they expire on their own")
