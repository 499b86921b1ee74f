"""A serving process does its one-time work at start-up, before its first socket: what it
would otherwise do on its first answers, or in pauses of its event loop, while every socket of
the process waited.

Each check runs in a fresh interpreter that imports the site's ASGI module as daphne does
(what a process did once stays done for the rest of it).
"""

import functools
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The module's two interpreters (first_answer) take seconds each: its tests run on one worker,
# which starts them once for all three (dealt out one by one, each worker could start both),
# and with the long tests first (tests/conftest.py).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("process-start")]

# Counts the patterns `re` compiles (a private function of `re`: if Python renames it, this
# fails loudly rather than passing) while a first answer is rendered.
FIRST_ANSWER = """
import gc, json, os, re, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
if {serving}:
    import chatsite.asgi
else:
    import django
    django.setup()
from assistants_app.rendering import render_markdown
from django.conf import settings
from django.urls import get_resolver

urls_ready = settings.ROOT_URLCONF in sys.modules and get_resolver()._populated

compiled = 0
compile_pattern = re._compiler.compile

def counted(*args, **kwargs):
    global compiled
    compiled += 1
    return compile_pattern(*args, **kwargs)

re._compiler.compile = counted
render_markdown("The docs: https://docs.python.org/3/ and an example:\\n\\n"
                "```python\\nprint('hi')\\n```\\n\\n```bash\\nls -l\\n```")
print(json.dumps({{"compiled": compiled, "frozen": gc.get_freeze_count(), "urls": urls_ready,
                  "collected_over": len(gc.get_objects())}}))
"""


@functools.cache  # one interpreter each way for the module's tests: each takes seconds
def first_answer(serving: bool) -> dict:
    code = textwrap.dedent(FIRST_ANSWER.format(serving=serving))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_serving_process_renders_its_first_answer_without_compiling_patterns():
    assert first_answer(serving=False)["compiled"] > 0  # the count sees first-use compiles
    assert first_answer(serving=True)["compiled"] == 0


def test_the_objects_start_up_made_are_left_out_of_garbage_collections():
    started = first_answer(serving=True)
    # Modules, classes, the SDK's models: hundreds of thousands, walked by every full
    # collection unless frozen. What a collection still walks is what came after.
    assert started["frozen"] > 100_000
    assert started["collected_over"] < started["frozen"] / 10


def test_a_serving_process_has_its_urls_and_views_loaded_before_its_first_request():
    assert first_answer(serving=False)["urls"] is False  # Django leaves them to that request
    assert first_answer(serving=True)["urls"] is True
