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
import functools
import weakref

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

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
    base, most = _bounds()
    return min(max(base, LAG_FACTOR * loop_lag()), most)


@functools.cache
def _bounds() -> tuple[float, float]:
    """The settings' interval and ceiling, read once: asked for every token a provider streams,
    where each read of Django's settings is a call of its own."""
    base = settings.STREAM_DELTA_SECONDS
    return base, max(base, settings.STREAM_DELTA_MAX_SECONDS)


@receiver(setting_changed)
def _read_again(setting: str, **kwargs) -> None:  # as tests change them
    if setting in ("STREAM_DELTA_SECONDS", "STREAM_DELTA_MAX_SECONDS"):
        _bounds.cache_clear()
