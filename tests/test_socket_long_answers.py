"""Answers of any length reach the page whole, live and on replay, through real daphne, whose
message size limit bounds what the server sends as well as what clients send."""

import asyncio
import html
import json
import re

import pytest

from .live import SiteClient, is_assistant_message, receive_until, start_site
from .long_answers import (
    PIECE_CHARS,
    add_big_assistant,
    code_of,
    provider_env,
    provider_in_thread,
    russian_of,
)

pytestmark = pytest.mark.slow


def text_of(message_html: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", message_html)).strip()


@pytest.fixture(scope="module")
def answering() -> dict:
    """What the provider answers: each test sets its own long text before it asks."""
    return {"text": ""}


@pytest.fixture(scope="module")
def site(tmp_path_factory, answering):
    """One site for the module's long answers, started once instead of once a test, on a
    provider that answers whatever text the test set."""
    with provider_in_thread(lambda: answering["text"]) as provider_url:
        path = tmp_path_factory.mktemp("long-answers")
        with start_site(path, env=provider_env(provider_url)) as site:
            add_big_assistant(site)
            yield site


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (code_of(1_000_000), lambda text: text.removeprefix("```python\n").removesuffix("\n```")),
        (russian_of(200_000), lambda text: text),
    ],
    ids=["1 MB of code", "200,000 characters of Russian"],
)
async def test_a_long_answer_arrives_whole_live_and_on_replay(site, answering, text, expected):
    answering["text"] = text
    alice = SiteClient(site, "alice")
    thread_id = alice.start_thread("Big")
    async with alice.websocket(thread_id) as socket:
        await socket.send(json.dumps({"type": "hello", "last_message_id": None}))
        sent = await asyncio.to_thread(alice.post, thread_id, "Something long, please")
        assert sent.status_code == 201
        live = await receive_until(socket, is_assistant_message, timeout=90)
    # A reload, or a reconnect after the answer ended: the replay brings it whole too.
    async with alice.websocket(thread_id) as socket:
        prompt_id = sent.json()["message"]["id"]
        await socket.send(json.dumps({"type": "hello", "last_message_id": prompt_id}))
        replayed = await receive_until(socket, is_assistant_message, timeout=60)

    streamed = ""
    for delta in (e for e in live if e["type"] == "message.delta"):
        streamed = streamed[: delta["offset"]] + delta["text"]
    # Live, piece by piece, before the final message (which may come before the last piece).
    assert len(streamed) >= PIECE_CHARS and text.startswith(streamed)
    [final] = [e["message"] for e in live if is_assistant_message(e)]
    assert text_of(final["html"]) == expected(text)
    [again] = [e["message"] for e in replayed if is_assistant_message(e)]
    assert again == final
