"""`python -m chatsite.server` (what manage.py serve and the systemd unit start): daphne, on
uvloop's event loop unless CHAT_EVENT_LOOP says asyncio."""

import os
import subprocess
import sys

import pytest

from .live import ROOT

# daphne makes its loop as daphne.server is imported: the kind of that loop is what it runs on.
LOOP_DAPHNE_RUNS_ON = (
    "from chatsite.server import choose_event_loop; print(choose_event_loop()); "
    "import daphne.server; print(type(daphne.server.twisted_loop).__module__.split('.')[0])"
)


def loop_daphne_runs_on(**env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", LOOP_DAPHNE_RUNS_ON], capture_output=True, text=True,
        cwd=ROOT, env=environ, timeout=60,
    )  # fmt: skip


CHOICES = [("", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio"), (" AsyncIO ", "asyncio")]


@pytest.mark.parametrize(("chosen", "loop"), CHOICES)
def test_daphne_runs_on_the_loop_chosen(chosen, loop):
    ran = loop_daphne_runs_on(CHAT_EVENT_LOOP=chosen)

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == [loop, loop], (
        "daphne no longer makes Twisted's loop from the policy as daphne.server is imported: "
        "read chatsite/server.py against the installed daphne"
    )


def test_a_loop_it_does_not_know_is_refused_in_words():
    ran = loop_daphne_runs_on(CHAT_EVENT_LOOP="tokio")

    assert ran.returncode != 0
    assert "CHAT_EVENT_LOOP='tokio': it is uvloop (the default) or asyncio." in ran.stderr
