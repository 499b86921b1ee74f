"""Starting a stored run on its provider, and asking a provider to stop one.

`start` is called by services once the user's message and its run are stored (the run under
the starting lease, leases.starting_lease). What follows is the driver's (driver.py), in this
process, which keeps the lease; the thread's sockets are told too (the `run.started`
doorbell), so that another process takes the run over should this one die.
"""

import asyncio
import copy
import logging

from django.db import DatabaseError, DataError
from django.utils import timezone

from .. import branches
from ..engines import get_engine
from ..engines.base import Engine, RunUpdate
from ..exceptions import ProviderError
from ..models import Assistant, Message, Run, RunStatus, Thread
from . import events, pacing
from .driver import ensure_driving
from .endings import UNEXPECTED, cancel_quietly, failure
from .leases import PROCESS_ID, Lease
from .store import UNSTORABLE, record

log = logging.getLogger(__name__)

START_ATTEMPTS = 3


# Errors after which the provider has certainly not acted on the request, so sending it again
# cannot start a second answer.
RESEND_SAFE_CODES = {"rate_limited", "conversation_locked"}


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
        await Lease.starting(run.pk).release()


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
    try:
        if message.remote_id:
            await Message.objects.filter(pk=message.pk).aupdate(remote_id=message.remote_id)
        recorded = await record(run, update, keep_starting=True)
    except BaseException:
        # Not stored (start() hands the run on): a stream held open for it would stay so.
        await engine.close_stream(run)
        raise
    if not recorded:
        # Stopped while it was being started, before anyone could know its provider id: stop
        # it there too, or it would go on with nobody watching (and keep the thread busy).
        await engine.close_stream(run)
        await cancel_quietly(engine, run)
        return
    if run.is_terminal:
        await engine.close_stream(run)
        return
    # This process drives the run it started: it holds the run's lease already, the run
    # loaded, and knows what the run stored, so nothing is released, taken, loaded or read
    # again (four queries a run), and a stream it opened (engine.holds_stream) can be followed
    # from here only anyway. The doorbell still rings: other processes' sockets stand by, and
    # take the run over if this process dies.
    if run.lease_owner == PROCESS_ID:  # kept as it was recorded
        # Handed on as loaded only with what the driver reads (tools run as the thread's
        # owner); otherwise the driver loads it, and finds the lease already its own.
        loaded = copy.copy(run) if Thread.owner.is_cached(run.thread) else None
        ensure_driving(run.pk, loaded=loaded, stored={m.remote_id for m in update.messages})
    else:
        await engine.close_stream(run)
    await ring_doorbell(run)


async def _ensure_remote_assistant(engine: Engine, assistant: Assistant) -> None:
    """Create the provider-side assistant nobody synced from admin yet (where there is one)."""
    if assistant.remote_id:
        return
    await engine.sync_assistant(assistant)
    if assistant.remote_id:
        await Assistant.objects.filter(pk=assistant.pk).aupdate(remote_id=assistant.remote_id)


async def ring_doorbell(run: Run) -> None:
    """Ask the thread's sockets to make sure someone drives the run."""
    await events.broadcast(run.thread.group_name, [events.run_started(run.pk)])


async def cancel(run: Run) -> None:
    """Ask the provider to stop an active run and record what it answers (usually cancelling;
    polling then sees cancelled). `run.thread.assistant` must be loaded. Raises ProviderError.

    A run generated here (Chat Completions) is only marked cancelling by its engine: whichever
    process generates it sees that within CHAT_CANCEL_CHECK_SECONDS, stops, and stores what was
    said so far (engines/local.py).
    """
    if not run.remote_id:
        # Not started on the provider (its process died first): nothing there to stop.
        await record(run, RunUpdate(status=RunStatus.CANCELLED))
        return
    engine = get_engine(run.thread.assistant)
    update = await engine.cancel(run)
    if await record(run, update) and not run.is_terminal:
        await ring_doorbell(run)


async def _start_on_provider(engine: Engine, run: Run, message: Message) -> RunUpdate:
    thread = run.thread
    prepared = False
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            await _ensure_remote_assistant(engine, thread.assistant)
            if not prepared:  # the provider conversation that holds the run's history
                await branches.prepare(engine, run, message)
                prepared = True
            return await engine.start_run(run, message)
        except ProviderError as error:
            if error.code not in RESEND_SAFE_CODES or attempt == START_ATTEMPTS:
                raise
            log.info("run %s: start refused (%s); trying again", run.pk, error.code)
            await asyncio.sleep(pacing.retry_delay(attempt, error.retry_after))

