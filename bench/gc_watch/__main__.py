"""The garbage collector's share of each server's CPU in runs made with this folder on
PYTHONPATH (sitecustomize.py):

    python -m bench.gc_watch bench/results/session/NAME-SCENARIO.log ...

Per log and server process: the seconds its collections took over the CPU seconds it spent,
between its first `gc-watch` line (started, before the load) and its last, how many full
collections came in between, and each full collection over 20 ms after start-up.
"""

import re
import sys
from collections import defaultdict

FIGURE = re.compile(r"(\w+)=([\d.]+)")


def summary(path: str) -> list[str]:
    ticks, fulls = defaultdict(list), defaultdict(list)
    for line in open(path, errors="replace"):
        if not line.startswith("gc-watch "):
            continue
        pid = FIGURE.search(line)[2]
        if " t=" in line:
            ticks[pid].append({name: float(value) for name, value in FIGURE.findall(line)})
        elif ticks[pid] and (pause := re.search(r"full collection (\d+) ms", line)):
            fulls[pid].append(int(pause[1]))  # after the first line: once it served
    rows = []
    for pid, lines in ticks.items():
        first, last = lines[0], lines[-1]
        gc, cpu = last["seconds"] - first["seconds"], last["cpu"] - first["cpu"]
        count = int(last["full_count"] - first["full_count"])
        share = 100 * gc / max(cpu, 1e-9)
        rows.append(
            f"{path} pid {pid}: GC {gc:.2f} s of {cpu:.2f} s CPU ({share:.1f} %), "
            f"{count} full collections; over 20 ms: {fulls[pid] or 'none'} ms; "
            f"{int(last['tracked'])} objects tracked, {int(last['frozen'])} frozen"
        )
    return rows


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print("\n".join(summary(path)))
