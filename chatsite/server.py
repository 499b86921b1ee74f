"""daphne on uvloop's event loop: `python -m chatsite.server` takes daphne's own arguments.

daphne runs Twisted on an asyncio event loop it makes as `daphne.server` is imported, before
the site's code is, so the kind of loop is chosen here, first. uvloop (libuv, in C) serves the
same site for less CPU an answer than asyncio's own loop, whose Python turns were a fifth of a
streaming process's samples (BENCHMARKS.md, "Cost per answer", fifteenth step).
CHAT_EVENT_LOOP=asyncio keeps asyncio's loop; where uvloop is not installed (it has no Windows
build) asyncio's is used too.
"""

import asyncio
import os


def choose_event_loop() -> str:
    """Make the loops made from now on uvloop's, unless CHAT_EVENT_LOOP says asyncio: the
    kind chosen."""
    wanted = os.environ.get("CHAT_EVENT_LOOP", "uvloop").strip().lower() or "uvloop"
    if wanted not in ("uvloop", "asyncio"):
        raise SystemExit(f"CHAT_EVENT_LOOP={wanted!r}: it is uvloop (the default) or asyncio.")
    if wanted == "asyncio":
        return "asyncio"
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def main() -> None:
    choose_event_loop()
    from daphne.cli import CommandLineInterface  # makes its loop: after the choice

    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
