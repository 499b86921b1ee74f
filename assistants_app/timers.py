"""Timers that wait for a time not yet come, on an event loop whose clock counts milliseconds.

uvloop (the site's loop, chatsite/server.py) keeps its clock in whole milliseconds and rounds
a timer's delay to the nearest one; a delay under half a millisecond is no delay at all. A
timer asked for 50.4 ms fires at 50, finds its time not yet come and asks again for 0.4 ms:
that runs at once, finds the clock unmoved, and asks again, some six hundred times until the
clock ticks over. The same befalls a time that is due to the millisecond on paper but a
hair later in floating point (`now + 0.05` taken apart again). A streaming process spent
about a tenth of its CPU so, in the pause timer of every answer and the stream's read
timeout (BENCHMARKS.md, "Cost per answer", seventeenth step). asyncio's own loop has a fine
clock and waits as asked either way.
"""

import math

PER_SECOND = 1000  # uvloop's clock and timers count milliseconds
TICK = 1 / PER_SECOND


def delay(seconds: float) -> float:
    """`seconds` for a timer, rounded up to whole milliseconds (a nanosecond over one is
    floating point's, not time to wait for): on either loop it then fires no sooner than
    asked, and on asyncio's up to a millisecond late. A wait under a tick waits one."""
    if seconds <= 0:
        return 0.0
    return max(1, math.ceil(seconds * PER_SECOND - 1e-6)) / PER_SECOND


def due(seconds: float) -> bool:
    """A wait of `seconds` left when a timer fires is none: under a tick is the clock's grain
    (or floating point's), not time still to wait."""
    return seconds < TICK
