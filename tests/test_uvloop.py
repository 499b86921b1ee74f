"""The engine on uvloop's event loop, which the site's daphne runs on (chatsite/server.py), as
`uvicorn[standard]` does: what it does differently from asyncio's own loop must not break a
streamed answer."""

import asyncio
from types import SimpleNamespace

import pytest
import respx
import uvloop

from assistants_app import runs
from assistants_app.models import RunStatus
from assistants_app.runs.streaming import _Pauses

from .conftest import PROVIDER_URL
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
