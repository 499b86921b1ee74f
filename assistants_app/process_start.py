"""What a process that drives runs or serves sockets does once, at start-up (chatsite/asgi.py,
`run_worker`): the one-time work it would otherwise do on its first answers, or in pauses of
its event loop, while every socket of the process waited (tests/test_process_start.py)."""

import gc

from django.urls import get_resolver

from .engines.client import preload
from .rendering import warm_up


def make_ready() -> None:
    preload()  # the provider SDK's lazy parts and models
    warm_up()  # Markdown's patterns and the lexers of the common languages
    load_urls()
    freeze_what_start_up_made()  # last: what the lines above made is frozen too


def load_urls() -> None:
    """Import the URL configuration, and with it every view, and build its reverse lookup:
    Django does both on the first request and the first `reverse()` (the first a
    tenth of a second of CPU on the bench machine, in which the loop and its sockets wait)."""
    resolver = get_resolver()
    resolver.url_patterns  # noqa: B018 - a cached property: the import
    resolver.reverse_dict  # noqa: B018 - likewise: populates the lookup


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
