"""Generating an answer in this process, for engines whose runs live here (Chat Completions
and stateless Responses: the provider keeps no run to poll).

The generation streams through LiveText like a provider's stream; meanwhile the lease is
renewed and the stored status looked at, so a cancel from any process stops it.
"""

import asyncio
import logging
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..db import database_sync_to_async
from ..engines.base import Engine, RunUpdate, StreamEvent, Turn
from ..exceptions import ProviderError
from ..history import History, fit_history, fitting_tokens, shorter
from ..models import Run, RunStatus
from . import events
from .endings import expire
from .leases import Lease
from .streaming import LiveText, live_texts

log = logging.getLogger(__name__)


async def generate(engine: Engine, run: Run, deadline, lease: Lease) -> RunUpdate | None:
    """The whole answer of a locally executed run (chat), generated in this process.

    Its text goes to the sockets as it comes, like a streamed run's (LiveText). Meanwhile the
    lease is renewed and the stored status looked at every CHAT_CANCEL_CHECK_SECONDS, so a
    cancel from any process stops it with what was said so far. None when there is nothing
    more to do here: the run expired (recorded) or another process took it over.
    """
    committed: list[dict] = []
    status = await _begin_generation(run, committed)
    await events.broadcast(run.thread.group_name, committed)
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
    live = live_texts[run.pk] = LiveText(run, lease)

    def generating(turns: list[Turn]) -> asyncio.Task:
        return asyncio.create_task(
            engine.generate(run, turns, on_text=lambda text: live.add(StreamEvent(delta=text))),
            name=f"generate-{run.pk}",
        )

    generation = generating(history.turns)
    tried_shorter = False
    loop = asyncio.get_running_loop()
    checked_at = loop.time()
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
                await expire(engine, run)
                return None
            if await _status_of(run.pk) == RunStatus.CANCELLING:
                await _stop(generation)
                return await engine.cancel(run)
            if not await lease.renew_when_due():
                return None
    finally:
        generation.cancel()  # this task was cancelled (shutdown) or gave up on the run
        del live_texts[run.pk]


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
            event = events.run_status(run)
            transaction.on_commit(partial(committed.extend, [event]))
            return run.status
    return _stored_status(run.pk)
