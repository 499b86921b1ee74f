"""Percentiles of the `hop-watch` lines in servers' logs (runs made with this folder on
PYTHONPATH, sitecustomize.py):

    python -m bench.hop_watch bench/results/session/NAME-SCENARIO.log ...

Per log: each kind of database call, how many, and p50 / p95 / p99 of the milliseconds it
waited for a thread, ran there and waited for the event loop after; and the whole time of
recording a run's end (its store and the events sent after it).
"""

import re
import sys
from collections import defaultdict

from bench.report import percentile

FIGURE = re.compile(r"(\w+)=(\S+)")


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return "/".join(f"{percentile(values, p):.1f}" for p in (50, 95, 99))


def summary(path: str) -> list[str]:
    calls, ends = defaultdict(lambda: defaultdict(list)), []
    for line in open(path, errors="replace"):
        if not line.startswith("hop-watch "):
            continue
        figures = dict(FIGURE.findall(line))
        if "call" in figures:
            for part in ("queued", "ran", "resumed"):
                calls[figures["call"]][part].append(float(figures[part]))
        elif "total" in figures:
            ends.append(float(figures["total"]))
    rows = [f"{path}: {len(ends)} runs' ends recorded, p50/p95/p99 {_spread(ends)} ms"]
    for name, parts in sorted(calls.items(), key=lambda item: -len(item[1]["ran"])):
        rows.append(
            f"  {name}: {len(parts['ran'])} calls, queued {_spread(parts['queued'])}, "
            f"ran {_spread(parts['ran'])}, resumed {_spread(parts['resumed'])} ms"
        )
    return rows


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print("\n".join(summary(path)))
