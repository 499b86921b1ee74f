"""The engine on uvloop's event loop, which the site's daphne runs on (chatsite/server.py), as
`uvicorn[standard]` does: what it does differently from asyncio's own loop must not break a
streamed answer."""

import asyncio
from types import SimpleNamespace

import pytest
import respx
import uvloop

from assistants_app import runs
from assistants_app.engines import wire
from assistants_app.models import RunStatus
from assistants_app.runs.streaming import _Pauses

from .conftest import PROVIDER_URL
from .engines.test_provider_errors import tcp_server
from .engines.test_wire import answer, falls_silent, silent_failure_of
from .streamed import ANSWER, WORDS
from .test_streaming import RETRIEVE, completion, deltas, opening, sse, stream_response


def test_a_pause_timer_due_at_once_can_be_moved():
    # uvloop's call_at for a time already reached returns a plain Handle, without `when()`:
    # under load 74 of 125 streamed answers failed on it (AttributeError) before.
    async def move_a_due_timer():
        pauses = _Pauses(SimpleNamespace(wake_in=lambda: 0.0))  # text waits: act at once
        pauses.wake_by(0.5)  # an event arrived meanwhile; a later wake changes nothing
        pauses.wake_by(0.0)
        assert pauses.timer is not None and not pauses.timer.cancelled()
        pauses.timer.cancel()

    uvloop.run(move_a_due_timer())


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("streaming")
def test_a_streamed_answer_with_pauses_arrives_whole(started_run):
    async def written_over_time():
        events = opening() + deltas(WORDS) + completion()
        for sequence, event in enumerate(events):
            yield sse([event], first_sequence=sequence)
            await asyncio.sleep(0.02)  # pauses of the provider: the timer sends held text

    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        provider.get(RETRIEVE).mock(return_value=stream_response(written_over_time()))
        uvloop.run(runs.drive(started_run.pk))

    started_run.refresh_from_db()
    assert started_run.status == RunStatus.COMPLETED
    assert started_run.thread.messages.filter(role="assistant").get().text == ANSWER


# uvloop's clock and timers count whole milliseconds and round a delay to the nearest: a timer
# asked for 50.4 ms fires at 50, and one asked again for the 0.4 ms left fires at once, and so
# on until the clock ticks over (assistants_app/timers.py). These waits are not on the grain.
OFF_THE_GRAIN = 0.0004


class HeldText:
    """A stream's text that must go out at `at` (loop time), and nothing after it."""

    def __init__(self, at: float):
        self.loop = asyncio.get_running_loop()
        self.at, self.asked, self.pushed_at = at, 0, None
        self.pushed = asyncio.Event()
        self.lease = self

    def wake_in(self) -> float:
        self.asked += 1
        return 3600.0 if self.pushed.is_set() else max(0.0, self.at - self.loop.time())

    async def renew_when_due(self) -> bool:
        return True

    async def push(self) -> None:
        self.pushed_at = self.loop.time()
        self.pushed.set()


@pytest.mark.parametrize("run", [uvloop.run, asyncio.run], ids=["uvloop", "asyncio"])
def test_held_text_goes_out_on_time_without_the_timer_spinning(run):
    async def held_for(seconds: float) -> HeldText:
        loop = asyncio.get_running_loop()
        held = HeldText(at=loop.time() + seconds)
        pauses = _Pauses(held)
        await asyncio.wait_for(held.pushed.wait(), 2)
        await pauses.stop()
        return held

    async def both():
        return [await held_for(0.05 + OFF_THE_GRAIN), await held_for(0.05)]

    for held in run(both()):
        assert held.asked <= 3, f"the timer fired {held.asked} times for one push"
        assert held.pushed_at >= held.at - 0.001  # not before its time, to the clock's grain


def test_a_silent_providers_limit_is_kept_without_the_timer_spinning(monkeypatch):
    checks = []
    check = wire._QuietLimit._check

    def counted(self):
        checks.append(self.loop.time())
        check(self)

    monkeypatch.setattr(wire._QuietLimit, "_check", counted)
    head, _ = answer(b"")
    first = b'data: {"type": "a"}\n\n'

    async def silent_after_a_piece():
        serve = falls_silent(head + b"%x\r\n%s\r\n" % (len(first), first), for_seconds=3)
        async with tcp_server(serve) as port:
            return await silent_failure_of(port, False, monkeypatch, timeout=0.3 + OFF_THE_GRAIN)

    code, _, retryable = uvloop.run(silent_after_a_piece())

    assert (code, retryable) == ("timeout", True)
    assert 1 <= len(checks) <= 3, f"the limit's timer fired {len(checks)} times"
