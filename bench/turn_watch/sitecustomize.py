"""Where a streamed token waits inside a server: `PYTHONPATH=$PWD/bench/turn_watch python -m
bench ...` (an absolute path, as the servers of `--site` run in another folder).

A diagnostic, not part of the site: once Django is set up in a web server process, it writes to
the server's log (the benchmark's NAME-SCENARIO.log) a `turn-watch` line

- every 0.25 s while a run streams: how late a timer of the event loop ran (`lag`, what every
  turn of the loop an event waits for costs it);
- for each `message.delta` sent: how long its first character waited to be sent (`held`, the
  coalescing of runs/streaming.py), how long sending took its driver (`send`), and how long the
  event then took to reach the socket's handler in the consumer (`layer`, through the channel
  layer; the event carries the moment in a key of its own, taken off before the page).

`python -m bench.turn_watch LOG ...` prints their percentiles. It wraps runs/streaming.py's
LiveText, runs/events.py's `broadcast` and the consumer's `message_delta`, as they are at the
commit it was written for.
"""

import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[2]))  # for bench.server_hook
from bench.server_hook import after_django_setup, is_server  # noqa: E402

SENT_AT = "turn_watch_sent_at"


def _line(text: str) -> None:
    sys.stderr.write(f"turn-watch pid={os.getpid()} {text}\n")


def _install() -> None:
    from assistants_app import consumers
    from assistants_app.runs import events, streaming

    add, push = streaming.LiveText.add, streaming.LiveText.push

    async def timed_add(self, event):
        if not self.unsent:
            self.turn_watch_first = time.monotonic()
        _watch_the_loop()
        return await add(self, event)

    async def timed_push(self):
        if self.unsent and (first := getattr(self, "turn_watch_first", None)):
            _line(f"held={1000 * (time.monotonic() - first):.1f}")
        return await push(self)

    streaming.LiveText.add, streaming.LiveText.push = timed_add, timed_push

    broadcast = events.broadcast

    async def timed_broadcast(group, sent):
        for event in sent:
            if event.get("type") == "message.delta":
                event[SENT_AT] = time.time()
        started = time.monotonic()
        await broadcast(group, sent)
        _line(f"send={1000 * (time.monotonic() - started):.1f}")

    events.broadcast = timed_broadcast

    handler = consumers.ThreadConsumer.message_delta

    async def timed_handler(self, event):
        if (sent_at := event.pop(SENT_AT, None)) is not None:
            _line(f"layer={1000 * (time.time() - sent_at):.1f}")
        return await handler(self, event)

    consumers.ThreadConsumer.message_delta = timed_handler


_watched: set = set()


def _watch_the_loop() -> None:
    loop = asyncio.get_running_loop()
    if loop in _watched:
        return
    _watched.add(loop)

    def tick(due: float) -> None:
        _line(f"lag={1000 * max(0.0, loop.time() - due):.1f}")
        loop.call_later(0.25, tick, loop.time() + 0.25)

    loop.call_later(0.25, tick, loop.time() + 0.25)


if is_server():
    after_django_setup(_install)
