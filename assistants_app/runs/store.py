"""Storing what a provider says about a run, exactly once, and telling the thread's sockets.

`record` is the one way a run's progress reaches the database: its status, usage and new
assistant messages in one transaction, whose events are sent after it commits. New messages
are stored once each whoever writes them (the unique (thread, remote_id) key), and a run
that has ended stores nothing more.
"""

import asyncio
import logging
from dataclasses import replace
from functools import partial

from django.conf import settings
from django.db import DataError, transaction
from django.utils import timezone

from .. import branches, prepared, storable, tree, usage
from ..db import database_sync_to_async
from ..engines import get_engine
from ..engines.base import RunUpdate, Usage
from ..history import load_history
from ..models import ACTIVE_STATUSES, Message, Run, RunStatus
from . import events, leases

log = logging.getLogger(__name__)

# An answer stored with one of these statuses was cut short, and is shown as such.
CUT_SHORT_STATUSES = {
    RunStatus.CANCELLED, RunStatus.INCOMPLETE, RunStatus.FAILED, RunStatus.EXPIRED
}  # fmt: skip


# Statuses of a run under way, which a cancel asked for must not be overwritten with.
GOING = {RunStatus.QUEUED, RunStatus.IN_PROGRESS, RunStatus.REQUIRES_ACTION}

UNSTORABLE = RunUpdate(
    status=RunStatus.FAILED,
    error_code="unstorable_answer",
    error_message="The provider's answer could not be saved, so the run was stopped.",
)


async def record(run: Run, update: RunUpdate, keep_starting: bool = False) -> bool:
    """Store an update and push its events after commit. False if the run had already ended.

    New assistant messages are stored once each: the unique (thread, remote_id) key makes a
    second writer, in this process or another, find the row instead of adding one.

    `keep_starting`: the update is the provider's answer to a start by this process, whose
    starting lease turns into a driving one in the same write if the run goes on (then
    `run.lease_owner` is this process), without a statement and a trip of its own.
    """
    if update.usage is None and update.messages and update.status not in ACTIVE_STATUSES:
        update = await _with_estimated_usage(run, update)
    committed: list[dict] = []
    try:
        still_active = await _store(run, update, committed, keep_starting)
    except (DataError, ValueError, UnicodeError):
        # A write that can never succeed (a provider's id the database refuses, say): retrying
        # would only keep the thread busy until the run expires. Fail the run with the reason.
        log.exception("run %s: the provider's answer could not be stored", run.pk)
        run.remote_id = storable.mend(run.remote_id)
        update = UNSTORABLE
        still_active = await _store(run, update, committed)
    # Sent from the event loop, not from the database thread: waiting there on the channel
    # layer would hold up every other socket's and run's database work in this process.
    await events.broadcast(run.thread.group_name, committed)
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
def _store(run: Run, update: RunUpdate, committed: list[dict], keep_starting=False) -> bool:
    """The update's rows, in one transaction; its events go to `committed` once it commits."""
    with transaction.atomic():
        changes = {"status": update.status, "remote_id": run.remote_id}
        if run.started_at:
            changes["started_at"] = run.started_at
        if update.usage:
            changes.update(
                input_tokens=update.usage.input_tokens,
                cached_input_tokens=update.usage.cached_input_tokens,
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
                **leases.FREE,
                partial_text="",
            )
        # The run's row first: a write before any read keeps SQLite from refusing to turn a
        # reading transaction into a writing one under concurrent writers.
        going = update.status in GOING
        if keep_starting and going:
            # Usually the starting lease is still ours: one statement stores and keeps.
            kept = leases.kept()
            changed = _write_active_run(run.pk, changes | kept, going, starting=True)
            if changed:
                changes |= kept
            else:  # stopped or lost meanwhile: each on its own, as without the lease
                changed = _write_active_run(run.pk, changes, going)
                if leases.keep_starting_now(run.pk):
                    run.lease_owner = leases.PROCESS_ID
        else:
            changed = _write_active_run(run.pk, changes, going)
        if changed:
            for name, value in changes.items():
                setattr(run, name, value)
            usage.settle(run)
        still_active = changed or (
            update.status in GOING and Run.objects.filter(pk=run.pk).active().exists()
        )
        new_messages = []
        # Each part of the answer follows the one before it, the first follows the prompt.
        parent_id = tree.last_message_of(run) if still_active and update.messages else None
        # A run that had ended (stopped while its provider went on writing) stores no more.
        for remote in update.messages if still_active else []:
            message = _store_once(
                run,
                remote.remote_id,
                role=Message.Role.ASSISTANT,
                text=storable.mend(remote.text),
                parent_id=parent_id,
                is_partial=update.status in CUT_SHORT_STATUSES,
            )
            if message is not None:
                new_messages.append(message)
                parent_id = message.pk
        if still_active and update.status not in ACTIVE_STATUSES:
            # What its provider conversation now holds (up to the answer just stored).
            branches.settle(run, new_messages[-1].pk if new_messages else None)
        sent = [events.message_created(message) for message in new_messages]
        if changed:
            sent.append(events.run_status(run))
        transaction.on_commit(partial(committed.extend, sent))
    return bool(still_active)


def _store_once(run: Run, remote_id: str, **fields) -> Message | None:
    """The run's message of provider id `remote_id`, stored: None if it already was (by
    this driver before, or by another at the same time)."""
    message = Message(thread_id=run.thread_id, remote_id=remote_id, run=run, **fields)
    return message if message.save_unless_stored() else None


_ACTIVE_RUN_WRITES: dict[tuple, prepared.Update] = {}  # by the fields set, and the filters


def _write_active_run(run_id: int, changes: dict, going: bool, starting: bool = False) -> int:
    """Set `changes` on the run if it is active: 1, else 0. A run asked to stop is not set
    `going` again: a generation that begins as Stop is pressed, a provider's word from before
    it heard of the cancel. `starting`: only while this process's starting lease holds it.
    (A prepared update for each set of fields an update sets.)"""
    shape = (*changes, going, starting)
    write = _ACTIVE_RUN_WRITES.get(shape)
    if write is None:

        def active_run(run_id, **changes):
            rows = Run.objects.filter(pk=run_id).active()
            if going:
                rows = rows.exclude(status=RunStatus.CANCELLING)
            if starting:
                rows = rows.filter(lease_owner=leases.STARTING)
            return rows, changes

        kinds = {"run_id": int} | {name: prepared.field_kind(Run, name) for name in changes}
        write = _ACTIVE_RUN_WRITES.setdefault(shape, prepared.Update(active_run, kinds))
    return write(run_id=run_id, **changes)
