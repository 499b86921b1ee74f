"""The floor: a scenario's load sent straight to the simulator, what talking to the provider
directly costs, in a process of its own so that its CPU time can be measured apart.

It reads its plan (JSON) on stdin and prints what it did (JSON) on stdout, as the load
generator does. `runners` clients each keep one answer going, back to back, for `duration`
seconds, with the openai SDK on its aiohttp transport (as engines/client.py builds it) and
the scenario's protocol: Responses streamed (a background response, then its stream read to
the end) or polled (a background response, retrieved after 0.2 s, doubling to 1 s, as our
adaptive polling does), or Chat Completions streamed or whole. `bench.run` cuts the
process's CPU time to the posting window it reports and divides by the answers and deltas.
"""

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import openai

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_RUNNERS = 1000
MAX_DURATION = 600.0
POLL_FIRST_SECONDS = 0.2  # RUN_POLL_FIRST_SECONDS
POLL_MAX_SECONDS = 1.0  # RUN_POLL_MAX_SECONDS
TERMINAL = ("completed", "failed", "cancelled", "incomplete")
INSTRUCTIONS = "Be brief."  # the seeded "Sim" assistant's
LINGER_SECONDS = 0.6  # over two of bench.run.Sampler's intervals


@dataclass
class Plan:
    base_url: str  # the simulator's, ending in /v1
    protocol: str  # "responses" or "chat"
    streaming: bool
    runners: int
    duration: float  # seconds of posting; answers then under way are finished
    run_timeout: float
    model: str = "simulator"

    def check(self) -> None:
        if urlsplit(self.base_url).hostname not in LOOPBACK:
            raise SystemExit(f"refusing to load a non-loopback address: {self.base_url}")
        if self.runners > MAX_RUNNERS or self.duration > MAX_DURATION:
            raise SystemExit("plan exceeds the floor's bounds")
        if self.protocol not in ("responses", "chat"):
            raise SystemExit(f"unknown protocol {self.protocol!r}")


@dataclass
class Tally:
    answers: int = 0
    deltas: int = 0
    errors: list[str] = field(default_factory=list)


async def responses_streamed(client: openai.AsyncOpenAI, text: str) -> int:
    """One streamed answer: its text deltas."""
    response = await client.responses.create(
        model="simulator", input=text, instructions=INSTRUCTIONS, background=True, store=True
    )
    deltas = 0
    async for event in await client.responses.retrieve(response.id, stream=True):
        if event.type == "response.output_text.delta":
            deltas += 1
        elif event.type in ("response.failed", "response.incomplete"):
            raise RuntimeError(f"{response.id} ended {event.type}")
    return deltas


async def responses_polled(client: openai.AsyncOpenAI, text: str) -> int:
    response = await client.responses.create(
        model="simulator", input=text, instructions=INSTRUCTIONS, background=True, store=True
    )
    delay = POLL_FIRST_SECONDS
    while response.status not in TERMINAL:
        await asyncio.sleep(delay)
        delay = min(2 * delay, POLL_MAX_SECONDS)
        response = await client.responses.retrieve(response.id)
    if response.status != "completed":
        raise RuntimeError(f"{response.id} ended {response.status}")
    return 0


async def chat_streamed(client: openai.AsyncOpenAI, text: str) -> int:
    stream = await client.chat.completions.create(
        model="simulator",
        messages=[{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": text}],
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas = 0
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            deltas += 1
    return deltas


async def chat_whole(client: openai.AsyncOpenAI, text: str) -> int:
    await client.chat.completions.create(
        model="simulator",
        messages=[{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": text}],
    )
    return 0


ANSWER = {
    ("responses", True): responses_streamed,
    ("responses", False): responses_polled,
    ("chat", True): chat_streamed,
    ("chat", False): chat_whole,
}


async def runner(client, plan: Plan, index: int, until: float, tally: Tally) -> None:
    answer = ANSWER[plan.protocol, plan.streaming]
    turn = 0
    while time.monotonic() < until:
        turn += 1
        try:
            async with asyncio.timeout(plan.run_timeout):
                deltas = await answer(client, f"Bench message {turn} from user {index}")
        except (openai.OpenAIError, RuntimeError, TimeoutError) as error:
            tally.errors.append(f"runner {index}: {error!r}")
            await asyncio.sleep(1.0)
            continue
        tally.answers += 1
        tally.deltas += deltas


async def drive(plan: Plan) -> dict:
    client = openai.AsyncOpenAI(
        base_url=plan.base_url, api_key="none", max_retries=0,
        http_client=openai.DefaultAioHttpClient(),
    )  # fmt: skip
    tally = Tally()
    async with client:
        # The SDK's lazily loaded parts are imported before the window, as the site preloads.
        client.responses, client.chat  # noqa: B018
        posting = {"started": time.time()}
        until = time.monotonic() + plan.duration
        await asyncio.gather(*(runner(client, plan, i, until, tally) for i in range(plan.runners)))
        posting["stopped"] = time.time()
    # The process lives on a little, so that its CPU time is sampled after the window too.
    await asyncio.sleep(LINGER_SECONDS)
    return {
        "posting": posting,
        "answers": tally.answers,
        "deltas": tally.deltas,
        "error_count": len(tally.errors),
        "errors": tally.errors[:10],
    }


def main() -> None:
    plan = Plan(**json.load(sys.stdin))
    plan.check()
    deadline = plan.duration + plan.run_timeout + 30
    json.dump(asyncio.run(asyncio.wait_for(drive(plan), timeout=deadline)), sys.stdout)


if __name__ == "__main__":
    main()
