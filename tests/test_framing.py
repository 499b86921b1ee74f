"""Events bigger than a websocket message go out in parts, each under the limit, that join
back into the event; smaller ones go out as they are."""

import json
import os
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from assistants_app.framing import Reassembler, frames

texts = st.text(st.characters(exclude_categories=[]), max_size=5000)  # lone surrogates too


@settings(max_examples=200, deadline=None, database=None)
@given(text=texts, max_bytes=st.integers(600, 20_000))
def test_any_event_comes_back_whole_from_parts_under_the_limit(text, max_bytes):
    event = {"type": "message.delta", "run_id": 1, "offset": 0, "text": text}
    sent = list(frames(event, max_bytes))

    assert all(len(frame.encode()) <= max_bytes for frame in sent)
    parts = Reassembler()
    assert [parts.feed(frame) for frame in sent][-1] == event
    assert len(sent) == 1 or all(json.loads(f)["type"] == "part" for f in sent)


def test_a_small_event_is_sent_as_it_is():
    event = {"type": "run.status", "run": {"id": 1, "status": "completed"}}
    assert list(frames(event, 16384)) == [json.dumps(event)]


def test_a_quote_heavy_event_stays_under_the_limit():
    event = {"type": "message.created", "message": {"html": '"\\' * 50_000}}
    assert max(len(frame) for frame in frames(event, 16384)) <= 16384


def test_python_clients_can_use_framing_without_django():
    # The benchmark's load generator and tests/live.py reassemble parts outside the site.
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    code = "import assistants_app.framing, bench.run"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
