"""How far behind this process's event loop runs, and so how often streamed text is worth
sending.

Every `message.delta` is a turn of the event loop for the driver, the channel layer and each
socket. When the process is saturated those turns queue: sending text every 50 ms to a loop
that is a second behind only makes the queue longer, and every answer later (BENCHMARKS.md,
"Cost per answer"). So deltas coalesce in proportion to the loop's lag: the interval is
STREAM_DELTA_SECONDS on an idle process and grows with the lag, up to
STREAM_DELTA_MAX_SECONDS; fewer, larger deltas, and the page stays about one lag behind
instead of falling further back.

The lag is measured by a timer: how late a callback asked for every SAMPLE_SECONDS runs,
smoothed, per event loop.
"""

import asyncio
import weakref

from django.conf import settings

SAMPLE_SECONDS = 0.1
SMOOTHING = 0.3  # weight of the newest sample
LAG_FACTOR = 2.0  # the interval is this many lags: a delta then carries about two lags of text


class _Monitor:
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.lag = 0.0
        self.handle = loop.call_later(SAMPLE_SECONDS, self.sample, loop.time() + SAMPLE_SECONDS)

    def sample(self, due: float) -> None:
        late = max(0.0, self.loop.time() - due)
        self.lag += SMOOTHING * (late - self.lag)
        next_due = self.loop.time() + SAMPLE_SECONDS
        self.handle = self.loop.call_later(SAMPLE_SECONDS, self.sample, next_due)


_monitors: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Monitor]" = (
    weakref.WeakKeyDictionary()
)


def loop_lag() -> float:
    """Seconds, smoothed, by which the running loop is late with its callbacks (measured from
    the first call on; 0 until then)."""
    loop = asyncio.get_running_loop()
    monitor = _monitors.get(loop)
    if monitor is None:
        monitor = _monitors[loop] = _Monitor(loop)
    return monitor.lag


def delta_interval() -> float:
    """How long streamed text waits to be sent with more: STREAM_DELTA_SECONDS, or more while
    the loop lags (up to STREAM_DELTA_MAX_SECONDS)."""
    base = settings.STREAM_DELTA_SECONDS
    return min(max(base, LAG_FACTOR * loop_lag()), max(base, settings.STREAM_DELTA_MAX_SECONDS))
