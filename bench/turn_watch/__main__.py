"""Percentiles of the `turn-watch` lines in servers' logs (runs made with this folder on
PYTHONPATH, sitecustomize.py):

    python -m bench.turn_watch bench/results/session/NAME-SCENARIO.log ...

Per log: the event loop's lag, and per `message.delta` how long its text was held, how long
its driver took to send it and how long it took to reach the socket's handler, each p50 / p95
/ p99 in milliseconds and how many.
"""

import re
import sys
from collections import defaultdict

from bench.report import percentile

FIGURE = re.compile(r"(lag|held|send|layer)=([\d.]+)")
WHAT = {
    "lag": "event loop's lag",
    "held": "text held to coalesce",
    "send": "sending, for the driver",
    "layer": "sent to the socket's handler",
}


def summary(path: str) -> list[str]:
    figures = defaultdict(list)
    for line in open(path, errors="replace"):
        if line.startswith("turn-watch "):
            for name, value in FIGURE.findall(line):
                figures[name].append(float(value))
    rows = [f"{path}:"]
    for name, words in WHAT.items():
        values = figures[name]
        spread = "/".join(f"{percentile(values, p):.1f}" for p in (50, 95, 99)) if values else "-"
        rows.append(f"  {words}: p50/p95/p99 {spread} ms ({len(values)})")
    return rows


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print("\n".join(summary(path)))
