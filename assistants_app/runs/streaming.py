"""Following a run's stream, whoever writes it: a provider's live stream, or a generation in
this process (engines/local.py, Chat Completions). Text goes to the thread's sockets as it is
written (LiveText: coalesced `message.delta` events, saved now and then so that a reload or
another process can resume it); a broken stream is resumed, with polling (driver.py) as the
durable fallback for runs the provider keeps.
"""

import asyncio
import logging
from dataclasses import replace
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from .. import prepared, storable, timers
from ..db import database_sync_to_async
from ..engines.base import Engine, RemoteMessage, RunUpdate, StreamEvent
from ..engines.local import UNFINISHED
from ..exceptions import ProviderError
from ..models import ACTIVE_STATUSES, Run
from . import events, lag, pacing
from .endings import expire
from .leases import Lease
from .store import record
from .tool_calls import answer_tool_calls

log = logging.getLogger(__name__)

STREAM_ATTEMPTS = 3  # streams opened for one run before it falls back to polling


class LiveText:
    """The answer being written for one run: sent to sockets as coalesced `message.delta`
    events, saved now and then so that a reload or another process can resume it."""

    def __init__(self, run: Run, lease: Lease):
        self.run, self.lease = run, lease
        self.text = run.partial_text
        self.sequence = run.stream_sequence
        self.item_id = ""
        self.sent = len(self.text)  # characters already pushed to sockets
        self.saved_at = self.pushed_at = 0.0
        self.saving: asyncio.Task | None = None  # the save of the text so far, under way

    @property
    def unsent(self) -> bool:
        return self.sent < len(self.text)

    def flush_due_in(self) -> float | None:
        """Seconds until unsent text must go out (None: nothing waits)."""
        if not self.unsent:
            return None
        elapsed = asyncio.get_running_loop().time() - self.pushed_at
        return max(0.0, lag.delta_interval() - elapsed)

    def wake_in(self) -> float:
        """Seconds until the follower must act without waiting for an event: to send text
        that waited long enough, or to renew the lease (a long answer outlasts it)."""
        renew_in = self.lease.renew_in()
        flush_in = self.flush_due_in()
        return renew_in if flush_in is None else min(flush_in, renew_in)

    async def add(self, event: StreamEvent) -> float | None:
        """Add the event's text, sent at once if text waited long enough: seconds until the
        text not sent yet must go out (None: none waits)."""
        self.text += storable.mend(event.delta)
        self.item_id = event.item_id or self.item_id
        if event.sequence is not None:
            self.sequence = event.sequence
        due = self.flush_due_in()
        if due == 0:
            await self.push()
            return None  # all of it went
        return due

    async def push(self) -> None:
        now = asyncio.get_running_loop().time()
        if self.unsent:
            event = self.delta_event(self.sent)
            self.sent, self.pushed_at = len(self.text), now
            await events.broadcast(self.run.thread.group_name, [event])
        if now - self.saved_at >= settings.STREAM_SAVE_SECONDS and not self._saving():
            self.saved_at = now
            self.saving = asyncio.create_task(
                self._save(self.text, self.sequence), name=f"{_task_name()}-save"
            )

    def _saving(self) -> bool:
        return self.saving is not None and not self.saving.done()

    async def _save(self, text: str, sequence: int | None) -> None:
        """Save the text so far, beside the stream rather than in its way: the next event
        need not wait for a database whose threads are busy (a burst of page loads or
        reconnects), as it once did, for up to a second. One at a time, so saves land in
        order; one landing after the run ended changes nothing (it saves active runs only).
        A failed save is the next one's to make up."""
        try:
            await _save_partial(run_id=self.run.pk, text=text, sequence=sequence)
        except Exception:  # noqa: BLE001 - the answer goes on; only a resume point is late
            log.warning("run %s: the text so far was not saved", self.run.pk, exc_info=True)

    async def saved(self) -> None:
        """Once the save under way, if any, is done."""
        if self.saving is not None:
            await asyncio.wait([self.saving])

    def delta_event(self, offset: int = 0) -> dict:
        """Text from `offset` on; a client with fewer characters than `offset` missed some."""
        return events.message_delta(self.run.pk, self.text[offset:], offset)

    def restart(self) -> None:
        """The answer is written again from the start: its next push replaces the page's."""
        self.text, self.item_id, self.sent = "", "", 0

    def said(self) -> list[RemoteMessage]:
        """What was written so far, as the answer to keep when the provider returns none."""
        if not self.text.strip():
            return []
        return [RemoteMessage(remote_id=self.item_id or f"run-{self.run.pk}", text=self.text)]


# run id -> the text being streamed for it in this process (for replay on `hello`)
live_texts: dict[int, LiveText] = {}


def live_delta(run: Run) -> dict | None:
    """The `message.delta` that brings a new client up to date on an active run's answer."""
    live = live_texts.get(run.pk)
    if live is not None:
        # Nothing written yet is no delta: an empty one would say text is arriving.
        return live.delta_event() if live.text else None
    if run.partial_text:
        return events.message_delta(run.pk, run.partial_text)
    return None


async def follow_stream(engine: Engine, run: Run, lease: Lease, deadline: datetime) -> bool:
    """Stream the run until it is terminal and recorded (true), or until streaming gave out
    and polling must take over (false). At `deadline` the run expires, keeping what it wrote.

    Raises ProviderError for a run that only its stream can follow (`engine.can_poll` false,
    a generation here) once its stream keeps failing.
    """
    live = live_texts[run.pk] = LiveText(run, lease)
    try:
        async with asyncio.timeout_at(loop_time_at(deadline)) as time_limit:
            return await _follow(engine, run, live)
    except TimeoutError:
        if not time_limit.expired():
            raise
        await live.push()
        await expire(engine, run, live.said())
        return True
    finally:
        await live.push()
        await live.saved()
        del live_texts[run.pk]


async def _follow(engine: Engine, run: Run, live: LiveText) -> bool:
    """Follow the run's stream, resuming it after breaks (STREAM_ATTEMPTS streams, after which
    polling takes over). A run that cannot be polled is instead waited out like a failed poll
    (pacing.py), and fails with the provider's reason when that runs out."""
    streams = errors = 0
    while True:
        try:
            if await _follow_once(engine, run, live):
                return True
            if not engine.can_poll(run):
                raise ProviderError("stream_broken", UNFINISHED)  # its stream is all there is
        except ProviderError as error:
            log.info("run %s: stream failed (%s)", run.pk, error.code)
            if not engine.can_poll(run):
                errors += 1
                if not error.retryable or errors >= pacing.MAX_CONSECUTIVE_PROVIDER_ERRORS:
                    raise
                await asyncio.sleep(pacing.retry_delay(errors, error.retry_after))
                continue
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
        streams += 1
        if streams == STREAM_ATTEMPTS:
            return False


async def _follow_once(engine: Engine, run: Run, live: LiveText) -> bool:
    """Follow one stream of the run: true once the run is terminal and recorded, false if the
    stream ended first. A run that asks for tools goes on in the stream their outputs open."""
    asking_for_tools = None
    stream = aiter(engine.stream(run, live.sequence))
    pauses = _Pauses(live)
    try:
        while True:
            if pauses.lost:  # found by a tick while the follower was busy
                return True
            pauses.raise_error()
            # Read here, in the driver's own task: an event costs no turn of the event loop
            # on its way (while the provider is silent, _Pauses sees to held text and lease).
            pauses.reading = True
            try:
                event = await anext(stream)
            except StopAsyncIteration:
                break
            except asyncio.CancelledError:
                if not pauses.interrupted():
                    raise
                return pauses.outcome()
            finally:
                pauses.reading = False
            if not await live.lease.renew_when_due() or pauses.lost:
                return True  # another process drives the run now: nothing more to do here
            if event.restart:
                live.restart()
            if event.delta:
                pauses.wake_by(await live.add(event))
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
    finally:
        await pauses.stop()
        if hasattr(stream, "aclose"):
            await stream.aclose()
    if asking_for_tools is None:
        return False
    await live.push()
    asked_by = run.remote_id
    update = await answer_tool_calls(engine, run, asking_for_tools, stream=True, lease=live.lease)
    if update is None:
        return True  # the run ended here
    if run.remote_id != asked_by:
        live.sequence = None  # the outputs went to a new response: its stream starts anew
    if update.status != run.status:
        await record(run, update)
    return await _follow_once(engine, run, live)


class _Pauses:
    """What a stream's follower must do while its provider is silent: send text held long
    enough, renew the lease (a long pause outlasts it).

    A timer, not a task that reads the stream for the follower so that the follower could
    wait with a timeout (cancelling a read would break the stream): that task cost every
    event a turn of the event loop on its way to the sockets, and on a saturated process a
    turn is the loop's whole lag (BENCHMARKS.md, "Latency at saturation"). While the provider
    writes, the follower does both itself as events arrive; the timer acts only in a pause.
    What it does runs in a task of its own (`tick`); a lease lost or an error there ends a
    follower waiting on the stream, which then ends as if it had met them itself.
    """

    def __init__(self, live: LiveText):
        self.live = live
        self.follower = asyncio.current_task()
        self.loop = asyncio.get_running_loop()
        self.reading = False  # the follower waits on the stream (may be interrupted)
        self.lost = False
        self.error: BaseException | None = None
        self.ending = False  # the follower was interrupted by this, not cancelled by others
        self.ticking: asyncio.Task | None = None
        # When the timer fires, kept here: uvloop's handle for a time already reached is a
        # plain Handle, without `when()` (tests/test_uvloop.py).
        self.timer: asyncio.Handle | None = None
        self.due = 0.0
        self.wake_by(live.wake_in())

    def wake_by(self, seconds: float | None) -> None:
        """Make sure the timer fires within `seconds` (None: nothing new to wait for)."""
        if seconds is None:
            return
        due = self.loop.time() + timers.delay(seconds)
        if self.timer is not None and self.due <= due:
            return
        if self.timer is not None:
            self.timer.cancel()
        self.timer, self.due = self.loop.call_at(due, self._fire), due

    def _fire(self) -> None:
        self.timer = None
        wait = self.live.wake_in()
        if not timers.due(wait):  # the follower saw to it meanwhile
            self.wake_by(wait)
        elif self.ticking is None or self.ticking.done():
            # Named as its driver: its trips to threads are the driver's (a post's are counted).
            name = f"{self.follower.get_name()}-pause"
            self.ticking = self.loop.create_task(self.tick(), name=name)

    async def tick(self) -> None:
        try:
            if not await self.live.lease.renew_when_due():
                self.lost = True
            else:
                await self.live.push()  # text waited long enough: send it
        except Exception as error:  # noqa: BLE001 - the follower raises it as its own
            self.error = error
        if self.lost or self.error is not None:
            if self.reading:
                self.ending = True
                self.follower.cancel()
            return
        self.wake_by(self.live.wake_in())

    def interrupted(self) -> bool:
        """True if the follower's wait was cancelled by this alone (then it no longer is)."""
        if not self.ending:
            return False
        self.ending = False
        return self.follower.uncancel() == 0  # cancelled by someone else too: that stands

    def outcome(self) -> bool:
        """What an interrupted follower returns: it raises the tick's error, if any."""
        self.raise_error()
        return True  # the lease was lost: another process drives the run now

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    async def stop(self) -> None:
        """No more ticks; one under way finishes first (a push cut short could lose text)."""
        if self.timer is not None:
            self.timer.cancel()
        if self.ticking is not None:
            await asyncio.wait([self.ticking])


async def _finish(run: Run, update: RunUpdate, live: LiveText) -> None:
    """Record the end; an answer the provider did not return is kept from what was streamed."""
    if not update.messages and (said := live.said()):
        update = replace(update, messages=said)
    await record(run, update)


def _task_name() -> str:
    task = asyncio.current_task()
    return task.get_name() if task is not None else "stream"


def loop_time_at(moment) -> float:
    loop = asyncio.get_running_loop()
    return loop.time() + (moment - timezone.now()).total_seconds()


@database_sync_to_async
@prepared.update
def _save_partial(run_id: int, text: str, sequence: int | None):
    changes = {"partial_text": text, "stream_sequence": sequence}
    return Run.objects.filter(pk=run_id).active(), changes
