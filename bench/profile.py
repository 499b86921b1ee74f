"""Where a server's CPU goes, from a raw profile (`python -m bench --profile raw`): the share
of the samples that held the GIL, by kind of work, and the heaviest functions of our own.

    python -m bench.profile bench/results/NAME-SCENARIO-profile.txt [BEFORE.txt]

Each sample is put under the kind of the innermost frame that has one, so nested work counts
once (a query run from a view is database work). With a second file, both columns side by side.
"""

import re
import sys
from collections import Counter

KINDS = [  # (kind, pattern of a frame), the first that matches a frame names it
    ("provider stream (SDK, SSE)", r"AsyncStream|SSEDecoder|openai/_streaming"),
    ("provider requests (SDK, aiohttp)", r"openai/|aiohttp/|httpx/"),
    ("database (ORM, driver)", r"django/db/|psycopg/|sqlite3"),
    ("thread hops (async <-> sync)", r"run_in_executor|current_thread_executor|threading\.py"
     r"|concurrent/futures|asgiref/sync"),  # fmt: skip
    ("channel layer (Redis)", r"channels_redis/|redis/"),
    ("websockets and HTTP (Twisted, daphne)", r"twisted/|autobahn/|daphne/|uvicorn/|websockets/"),
    ("Markdown and sanitising", r"rendering\.py|markdown_it|nh3|pygments"),
]
# The frames every sample of the event loop's thread starts with (the process's start, daphne's
# server, the reactor and the loop running a callback): they name no kind of work. A sample with
# nothing else kinded is the loop's own or our code; one whose innermost frame is among them was
# inside the loop itself (uvloop's C, which has no Python frames of its own, or asyncio's
# selector and scheduling: waiting on and dispatching sockets and timers).
LOOP = re.compile(
    r"AsyncioSelectorReactor\.run \(|BaseEventLoop\.(run_forever|_run_once) \(|Handle\._run \("
)
LOOP_ITSELF = re.compile(LOOP.pattern + r"|\((selectors|asyncio/base_events|asyncio/events)\.py")
ROOT = re.compile(
    r"<frozen runpy>|\(chatsite/server\.py|\(daphne/(cli|__main__)\.py"
    r"|Server\.run \(daphne/server\.py|\(uvicorn/(main|server)\.py"
)
OURS = re.compile(r"\((?:.*/)?(assistants_app/[^:]*):\d+\)")


def read(path: str) -> list[tuple[list[str], int]]:
    samples = []
    for line in open(path, encoding="utf-8"):
        stack, _, count = line.rstrip().rpartition(" ")
        if stack and count.isdigit():
            samples.append((stack.split(";"), int(count)))
    return samples


def kind_of(frames: list[str]) -> str:
    if frames and LOOP_ITSELF.search(frames[-1]):
        return "the event loop itself (uvloop, asyncio)"
    frames = [frame for frame in frames if not (LOOP.search(frame) or ROOT.search(frame))]
    for frame in reversed(frames):
        for kind, pattern in KINDS:
            if re.search(pattern, frame):
                return kind
    return "other (event loop, our own code)"


def summarise(path: str) -> tuple[Counter, Counter, int]:
    kinds, functions, total = Counter(), Counter(), 0
    for frames, count in read(path):
        total += count
        kinds[kind_of(frames)] += count
        for name in {re.sub(r":\d+\)$", ")", f) for f in frames if OURS.search(f)}:
            functions[name] += count
    return kinds, functions, total


def share(counter: Counter, key: str, total: int) -> str:
    return f"{100 * counter[key] / total:5.1f} %" if total else "-"


def main(paths: list[str]) -> None:
    summaries = [summarise(path) for path in paths]
    print("| kind of work | " + " | ".join(paths) + " |")
    print("|---|" + "---|" * len(paths))
    kinds = Counter()
    for summary in summaries:
        kinds.update({k: v / summary[2] for k, v in summary[0].items()} if summary[2] else {})
    for kind, _ in kinds.most_common():
        print(f"| {kind} | " + " | ".join(share(s[0], kind, s[2]) for s in summaries) + " |")
    print("| samples | " + " | ".join(str(s[2]) for s in summaries) + " |")
    _, functions, total = summaries[0]
    print(f"\nOur functions, inclusive, in {paths[0]}:")
    for name, count in functions.most_common(15):
        print(f"  {100 * count / total:5.1f} %  {name}")


if __name__ == "__main__":
    main(sys.argv[1:] or sys.exit(__doc__))
