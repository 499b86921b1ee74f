"""Runs generated in this process (Chat Completions, and Responses on a provider without
background mode): the provider keeps no run, so the run's stream is its generation.

`LocalGeneration.stream` is the same seam as a provider's stream (the driver follows both the
same way): it fits the thread's history to the model (history.py), sends it with the
subclass's `generate`, and yields the text as it comes and the finished answer. If the
provider finds the history too long it is sent once more, shorter. Nothing here can be asked
to stop from another process, so the stored status is looked at every
CHAT_CANCEL_CHECK_SECONDS: `cancel` marks the run cancelling, and the generation stops there,
keeping what was said. Like responses.py, this reads the database (the history and the run's
status) and never writes it.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from django.conf import settings

from .. import timers
from ..db import database_sync_to_async
from ..exceptions import ProviderError
from ..history import History, fit_history, fitting_tokens, shorter
from ..models import ACTIVE_STATUSES, Run, RunStatus
from ..tool_transcript import Transcript
from ..tool_transcript import load_async as load_transcript
from .base import Engine, RemoteMessage, RunUpdate, StreamEvent, ToolOutput, Turn, Usage

log = logging.getLogger(__name__)

BROKEN = "The connection to the provider broke in the middle of its answer."
UNFINISHED = "The answer stopped before it was finished."
_FINISHED = object()  # put on a generation's queue when it ends


class LocalGeneration(Engine):
    streams = True

    def can_poll(self, run: Run) -> bool:
        return False  # the provider keeps nothing to poll: the run is followed by its stream

    async def generate(
        self,
        run: Run,
        history: list[Turn],
        on_text: Callable[[str], Awaitable[None]],
        transcript: Transcript | None = None,
    ) -> RunUpdate:
        """Produce the whole answer from `history` (which ends with the prompt) and the
        rounds of tool calls so far (`transcript`), handing each piece of text to `on_text`
        as it comes; or ask for tools (status requires_action, with `tool_calls`)."""
        raise NotImplementedError

    async def submit_tool_outputs(
        self, run: Run, outputs: list[ToolOutput], stream: bool = False
    ) -> RunUpdate:
        """Nothing to send: the outputs are stored as the run's steps, and the next
        generation (`stream`) sends them with the history."""
        return RunUpdate(status=RunStatus.IN_PROGRESS)

    async def cancel(self, run: Run) -> RunUpdate:
        """Nothing to ask a provider: the run is marked cancelling, and the process generating
        it stops at its next look, keeping what was said (see `stream`)."""
        return RunUpdate(status=RunStatus.CANCELLING)

    async def stream(self, run: Run, starting_after: int | None) -> AsyncIterator[StreamEvent]:
        """The run's answer, generated here from the start (`starting_after` does not apply)."""
        status = await _stored_status(run.pk)
        if status == RunStatus.CANCELLING:
            yield StreamEvent(update=RunUpdate(status=RunStatus.CANCELLED))  # nothing said yet
            return
        if status not in ACTIVE_STATUSES:
            yield StreamEvent(update=RunUpdate(status=status or RunStatus.FAILED))  # ended
            return
        transcript = await load_transcript(run)
        if transcript.pending:
            # Calls asked for before a restart, not answered yet: answered first.
            pending = RunUpdate(status=RunStatus.REQUIRES_ACTION, tool_calls=transcript.pending)
            yield StreamEvent(update=pending)
            return
        # A generation starts over: what an earlier process had written is replaced.
        yield StreamEvent(restart=True, update=RunUpdate(status=RunStatus.IN_PROGRESS))
        try:
            context = await self.context_tokens(run.thread.assistant)
        except ProviderError:
            context = None  # it does not answer: the generation fails at once and says why
        history = await database_sync_to_async(fit_history)(
            run, settings.CHAT_HISTORY_MAX_CHARS, context
        )
        run.note = history.note
        async for event in self._generation(run, history.turns, transcript):
            if event.update is not None and _did_not_fit(event.update, history, context):
                # Once more with the newest half of the history; the page is told (run.note).
                log.info("run %s: history did not fit (%s); sending less", run.pk,
                         event.update.error_code)  # fmt: skip
                history = shorter(history)
                run.note = history.note
                yield StreamEvent(restart=True)
                async for event in self._generation(run, history.turns, transcript):  # noqa: B020
                    yield event
                return
            yield event

    async def _generation(
        self, run: Run, turns: list[Turn], transcript: Transcript
    ) -> AsyncIterator[StreamEvent]:
        """One generation: its text as it comes, then its end; stopped (CANCELLED, with what
        was said) once the run is stored as cancelling."""
        queue: asyncio.Queue = asyncio.Queue()
        generation = asyncio.create_task(
            self.generate(run, turns, on_text=queue.put, transcript=transcript),
            name=f"generate-{run.pk}",
        )
        generation.add_done_callback(lambda _: queue.put_nowait(_FINISHED))
        said: list[str] = []
        loop = asyncio.get_running_loop()
        checked_at = loop.time()
        try:
            while True:
                check_in = checked_at + settings.CHAT_CANCEL_CHECK_SECONDS - loop.time()
                try:
                    async with asyncio.timeout(timers.delay(check_in)):
                        item = await queue.get()
                except TimeoutError:
                    item = None
                if item is _FINISHED:
                    yield StreamEvent(update=generation.result())  # a rate limit raises here
                    return
                if item is not None:
                    said.append(item)
                    yield StreamEvent(delta=item)
                if loop.time() - checked_at < settings.CHAT_CANCEL_CHECK_SECONDS:
                    continue
                checked_at = loop.time()
                if await _stored_status(run.pk) == RunStatus.CANCELLING:
                    generation.cancel()
                    await asyncio.wait([generation])  # its connection closed first
                    yield StreamEvent(update=stopped(run, said))
                    return
        finally:
            generation.cancel()  # the follower let go (shutdown, lease lost, time is up)


def stopped(run: Run, said: list[str]) -> RunUpdate:
    """A generation stopped by the user: what was said before is kept."""
    return RunUpdate(status=RunStatus.CANCELLED, messages=said_so_far(run, said))


def broken(run: Run, said: list[str], code: str, message: str, usage: Usage | None) -> RunUpdate:
    """A failed run that keeps what had arrived (stored as a partial answer)."""
    return RunUpdate(
        status=RunStatus.FAILED,
        messages=said_so_far(run, said),
        usage=usage,
        error_code=code,
        error_message=message,
    )


def failed_midway(
    run: Run, said: list[str], error: ProviderError, usage: Usage | None
) -> RunUpdate:
    """A generation whose stream failed. It is not replayed behind the user's back (it is
    slow and not idempotent): only a rate limit before any text is raised, for the driver
    to wait out; otherwise the run fails keeping what had arrived."""
    if error.code == "rate_limited" and not said:
        raise error
    if said and error.code in ("connection_error", "timeout"):
        return broken(run, said, "stream_broken", BROKEN, usage)
    return broken(run, said, error.code, error.message, usage)


def said_so_far(run: Run, said: list[str]) -> list[RemoteMessage]:
    text = "".join(said).rstrip()
    return [RemoteMessage(run.remote_id, text)] if text.strip() else []


def _did_not_fit(update: RunUpdate, history: History, context: int | None) -> bool:
    """Whether a generation failed for a prompt longer than the model's context, so that a
    shorter history may succeed. Most servers say so; some answer 200 and then drop the
    stream (llama-cpp-python): a stream that broke before its first word, on a history that
    fills much of the context (or an unknown one), is taken for that."""
    if update.messages or len(history.turns) < 2 or update.status != RunStatus.FAILED:
        return False
    if update.error_code == "context_overflow":
        return True
    if update.error_code not in ("stream_broken", "connection_error", "stream_error"):
        return False
    used = sum(fitting_tokens(turn.text) for turn in history.turns)
    return context is None or used >= context // 2


@database_sync_to_async
def _stored_status(run_id: int) -> str | None:
    return Run.objects.filter(pk=run_id).values_list("status", flat=True).first()
