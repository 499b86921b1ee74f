"""What a process that drives runs or serves sockets does once, at start-up (chatsite/asgi.py,
`run_worker`): the one-time work it would otherwise do on its first answers, or in pauses of
its event loop, while every socket of the process waited (tests/test_process_start.py)."""

import gc

from .engines.client import preload
from .rendering import warm_up


def make_ready() -> None:
    preload()  # the provider SDK's lazy parts and models
    warm_up()  # Markdown's patterns and the lexers of the common languages
    freeze_what_start_up_made()  # last: what the lines above made is frozen too


def freeze_what_start_up_made() -> None:
    """Keep the garbage collector off the objects start-up made (modules, classes, the SDK's
    models: about 300,000), which live as long as the process.

    A full collection walks every object Python tracks: 200 ms of a started process on this
    project's 2-core machine, in which the event loop, so every socket of the process, waits.
    One comes each time a quarter as many objects again have outlived younger collections:
    every 10 to 40 s of a loaded process (BENCHMARKS.md). Frozen (gc.freeze), those objects
    are left out of every collection, and a full one walks only what came after.
    """
    gc.collect()  # start-up's own garbage goes now rather than being kept forever
    gc.freeze()
