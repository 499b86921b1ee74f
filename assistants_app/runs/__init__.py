"""The run driver: start a run on its engine, follow it to a terminal status, store what it
says exactly once and push events to the thread's sockets.

A package of small modules, each with one job, imported one way (no cycles):

    events.py      the websocket protocol: one constructor per event, and `broadcast`
    leases.py      the lease that lets exactly one process drive a run
    store.py       `record`: a run's progress stored exactly once, its events sent after commit
    endings.py     how a run ends when its provider does not end it (failure, expiry, ...)
    tool_calls.py  running the tools a run asks for and submitting their outputs
    pacing.py      how often to poll, how long to wait after a failure
    lag.py         how far behind the event loop runs: deltas coalesce in proportion
    streaming.py   following a run's stream (a provider's, or a generation here); LiveText
    driver.py      the driving loop: one task per run, stream first, then polling
    starting.py    starting a run on its provider, and cancelling one

Callers use what this module re-exports (`runs.start`, `runs.ensure_driving`, ...). A test
that replaces one of the package's internals patches it in the module where it lives.
"""

from .driver import (
    _driving,
    drive,
    ensure_driving,
    orphaned_run_ids,
    release_all_leases,
    stop_driving,
)
from .endings import UNEXPECTED, failure
from .events import broadcast
from .leases import PROCESS_ID, STARTING, starting_lease
from .pacing import poll_delay
from .starting import cancel, start
from .store import CUT_SHORT_STATUSES, UNSTORABLE, record
from .streaming import LiveText, follow_stream, live_delta

__all__ = [
    "CUT_SHORT_STATUSES",
    "PROCESS_ID",
    "STARTING",
    "UNEXPECTED",
    "UNSTORABLE",
    "LiveText",
    "_driving",
    "broadcast",
    "cancel",
    "drive",
    "ensure_driving",
    "failure",
    "follow_stream",
    "live_delta",
    "orphaned_run_ids",
    "poll_delay",
    "record",
    "release_all_leases",
    "start",
    "starting_lease",
    "stop_driving",
]
