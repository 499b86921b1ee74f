"""What the garbage collector costs a server: `PYTHONPATH=$PWD/bench/gc_watch python -m bench ...`
(any command; every Python process it starts imports this module at start-up; an absolute path,
as the servers of `--site` run in another folder).

Each web server process (daphne, uvicorn) writes to its log (the benchmark's NAME-SCENARIO.log)
every 5 s a `gc-watch` line: the seconds all collections took and how many ran, the same for
full (generation 2) collections, the longest pause, the process's CPU seconds, and how many
objects the collector tracks and how many are frozen. A full collection over 20 ms gets a line
of its own. The GC's share of a run's CPU is the difference of its seconds between the first
line (the process started, no load yet) and the last, over that of the CPU seconds:
`python -m bench.gc_watch LOG ...` prints it.
"""

import gc
import os
import sys
import threading
import time

_started = 0.0
_totals = {"seconds": 0.0, "count": 0, "full_seconds": 0.0, "full_count": 0, "longest_ms": 0.0}


def _timed(phase: str, info: dict) -> None:
    global _started
    if phase == "start":
        _started = time.perf_counter()
        return
    took = time.perf_counter() - _started
    _totals["seconds"] += took
    _totals["count"] += 1
    _totals["longest_ms"] = max(_totals["longest_ms"], took * 1000)
    if info["generation"] == 2:
        _totals["full_seconds"] += took
        _totals["full_count"] += 1
        if took > 0.02 and _is_server():
            sys.stderr.write(f"gc-watch pid={os.getpid()} full collection {took * 1000:.0f} ms\n")


def _is_server() -> bool:
    # sys.argv is not set yet when this module is imported; it is by the time anything runs.
    return any(name in (sys.argv[0] if sys.argv else "") for name in ("daphne", "uvicorn"))


def _report() -> None:
    while True:
        time.sleep(5)
        if not _is_server():
            return
        figures = " ".join(
            f"{name}={value:.3f}" if isinstance(value, float) else f"{name}={value}"
            for name, value in _totals.items()
        )
        sys.stderr.write(
            f"gc-watch pid={os.getpid()} t={time.time():.1f} {figures} "
            f"cpu={time.process_time():.2f} tracked={len(gc.get_objects())} "
            f"frozen={gc.get_freeze_count()}\n"
        )
        sys.stderr.flush()


gc.callbacks.append(_timed)
threading.Thread(target=_report, name="gc-watch", daemon=True).start()
