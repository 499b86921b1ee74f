"""Long answers for tests: texts, and an OpenAI-compatible server that streams them back as
the answer to every chat completion (the simulator's answers are short and canned)."""

import asyncio
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager, contextmanager

from aiohttp import web

from .chat_stream import answer
from .live import free_port

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


@asynccontextmanager
async def provider_answering(text: str | Callable[[], str]):
    """A chat completions server on this event loop that answers `text` (or what the function
    `text` returns when asked); its base URL."""

    async def completions(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        said = text() if callable(text) else text
        pieces = [said[i : i + PIECE_CHARS] for i in range(0, len(said), PIECE_CHARS)]
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


@contextmanager
def provider_in_thread(text: str | Callable[[], str]):
    """The same server on an event loop of its own, for synchronous tests (Playwright's)."""
    loop = asyncio.new_event_loop()
    started, url = threading.Event(), []

    async def serve(stop: asyncio.Event):
        async with provider_answering(text) as base_url:
            url.append(base_url)
            started.set()
            await stop.wait()

    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(stop),))
    thread.start()
    started.wait(10)
    try:
        yield url[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def add_big_assistant(site) -> None:
    """Give a site started with `env=provider_env(url)` its assistant "Big" on that server."""
    create = "Assistant.objects.create(name='Big', model='big', engine='chat', provider='big')"
    site.manage("shell", "-c", f"from assistants_app.models import Assistant; {create}")


def provider_env(url: str) -> dict:
    return {"ASSISTANT_PROVIDERS": "big", "PROVIDER_BIG_BASE_URL": url}
