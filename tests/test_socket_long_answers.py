"""Answers of any length reach the page whole, live and on replay, through real daphne, whose
message size limit bounds what the server sends as well as what clients send."""

import asyncio
import html
import json
import re
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from .chat_stream import answer
from .live import SiteClient, free_port, is_assistant_message, receive_until, start_site

pytestmark = pytest.mark.slow

PIECE_CHARS = 50_000  # how much text the provider streams at a time


def code_of(size: int) -> str:
    """At least `size` characters of Python, in a Markdown code block."""
    lines, total, step = [], 0, 0
    while total < size:
        line = f"def step_{step:05d}(value):\n    return value + {step}  # step {step}\n"
        lines.append(line)
        total, step = total + len(line), step + 1
    return "```python\n" + "".join(lines) + "```"


def russian_of(size: int) -> str:
    sentence = "Съешь же ещё этих мягких французских булок, да выпей чаю. "
    return (sentence * (size // len(sentence) + 1))[:size].strip()


def text_of(message_html: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", message_html)).strip()


@asynccontextmanager
async def provider_answering(text: str):
    """An OpenAI-compatible server whose every chat completion streams `text`; its base URL."""

    async def completions(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        pieces = [text[i : i + PIECE_CHARS] for i in range(0, len(text), PIECE_CHARS)]
        for event in answer(*pieces):
            await response.write(event)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (code_of(1_000_000), lambda text: text.removeprefix("```python\n").removesuffix("\n```")),
        (russian_of(200_000), lambda text: text),
    ],
    ids=["1 MB of code", "200,000 characters of Russian"],
)
async def test_a_long_answer_arrives_whole_live_and_on_replay(tmp_path, text, expected):
    async with provider_answering(text) as provider_url:
        env = {"ASSISTANT_PROVIDERS": "big", "PROVIDER_BIG_BASE_URL": provider_url}
        with start_site(tmp_path, env=env) as site:
            site.manage("shell", "-c", "from assistants_app.models import Assistant; "
                        "Assistant.objects.create(name='Big', model='big', engine='chat', "
                        "provider='big')")  # fmt: skip
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


