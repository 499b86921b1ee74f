"""A process builds the SDK's models before it serves, not on its first answer.

The SDK builds a model's validators the first time it reads one: a tenth to half a second in
which the event loop, and so every socket of the process, waits. Each check runs in a fresh
interpreter, since what was built stays built for the rest of a process. It counts pydantic's
schema builds (`GenerateSchema`, a private class: if pydantic renames it, this fails loudly
rather than passing).
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

READ_AN_ANSWER = """
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
import django
django.setup()
import pydantic._internal._generate_schema as generate_schema

from assistants_app.engines.client import preload
from assistants_app.engines.responses import to_stream_event
from openai._models import construct_type
from openai.types.conversations import Conversation
from openai.types.responses import Response
from tests.provider_payloads import conversation, response

if {preload}:
    preload()
built = 0
build = generate_schema.GenerateSchema.__init__

def counted(self, *args, **kwargs):
    global built
    built += 1
    return build(self, *args, **kwargs)

generate_schema.GenerateSchema.__init__ = counted
answer = response("completed", text="Hello!")
# A streamed answer's last event, then a polled response and a conversation as the SDK reads
# them (`construct_type` is what its typed calls, `raw.parse()`, go through).
to_stream_event({{"type": "response.completed", "sequence_number": 9, "response": answer}})
construct_type(type_=Response, value=response("failed", error={{"code": "x", "message": "no"}}))
construct_type(type_=Conversation, value=conversation())
print(built)
"""


def schema_builds(preloaded: bool) -> int:
    """How many schemas reading a finished answer built, in a process that did (or did not)
    preload."""
    code = textwrap.dedent(READ_AN_ANSWER.format(preload=preloaded))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


# Two fresh interpreters that set Django up: seconds, so it is dealt out with the long tests
# first (tests/conftest.py) rather than last, where it would leave a worker finishing alone.
@pytest.mark.slow
def test_a_preloaded_process_reads_its_first_answer_without_building_models():
    assert schema_builds(preloaded=False) > 0  # the count sees the SDK's deferred builds
    assert schema_builds(preloaded=True) == 0
