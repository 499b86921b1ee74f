"""What one poll of a response costs the server's CPU: the SDK's typed call, as the site made
it first; the same GET sent straight to the httpx transport the SDK sends on, as client.get_json
sent it from the sixth step of "Cost per answer"; client.get_json, which since the fourteenth
sends it on that transport's aiohttp session; and the same GET on aiohttp alone (the floor).

`python -m bench.polls` starts the simulator, creates a background response that stays in
progress, and polls it a few hundred times each way, in turns, printing the CPU milliseconds
of each: BENCHMARKS.md, "Cost per answer", weighs it against what a polled answer spends.
Then the same for a polled run's create (one an answer): the SDK's typed call and its model of
the answer, as the site made it until the fifteenth step; client.post_json and the engine's
reading of the answer, as it makes it since; aiohttp alone.
"""

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.tables import print_costs

ROOT = Path(__file__).resolve().parent.parent


async def measure(base_url: str, repeats: int, rounds: int) -> dict[str, list[float]]:
    import aiohttp

    from assistants_app.engines.client import get_as_httpx, get_client, get_json

    provider = {"base_url": base_url, "api_key": "sk-bench"}
    client = get_client(provider)
    created = await client.responses.create(model="simulator", input="Hello", background=True)
    path = f"/responses/{created.id}"

    async def sdk():
        raw = await client.responses.with_raw_response.retrieve(created.id)
        raw.http_response.json()

    async def transport():  # get_json as it was: an httpx request to the SDK's transport
        await get_as_httpx(client, path)

    async def ours():
        await get_json(provider, path)

    async with aiohttp.ClientSession() as session:

        async def alone():
            headers = {"Authorization": "Bearer sk-bench"}
            async with session.get(base_url + path, headers=headers) as response:
                await response.json()

        ways = {
            "the SDK's typed call": sdk,
            "httpx's transport (get_json before)": transport,
            "get_json": ours,
            "aiohttp alone": alone,
        }
        return await timed(ways, repeats, rounds)


async def measure_creates(base_url: str, repeats: int, rounds: int) -> dict[str, list[float]]:
    import aiohttp

    from assistants_app.engines.client import get_client, post_json
    from assistants_app.engines.responses import _update_of, to_run_update

    provider = {"base_url": base_url, "api_key": "sk-bench"}
    client = get_client(provider)
    params = {"model": "simulator", "input": "Hello", "background": True, "store": True}

    async def sdk():  # the engine's create until the fifteenth step
        raw = await client.responses.with_raw_response.create(**params)
        to_run_update(raw.parse(), raw.headers)

    async def ours():
        answer, headers = await post_json(provider, "/responses", params)
        _update_of(answer, headers)

    async with aiohttp.ClientSession() as session:

        async def alone():
            headers = {"Authorization": "Bearer sk-bench"}
            async with session.post(f"{base_url}/responses", json=params, headers=headers) as r:
                await r.json()

        ways = {"the SDK's typed call": sdk, "post_json": ours, "aiohttp alone": alone}
        return await timed(ways, repeats, rounds)


async def timed(ways: dict, repeats: int, rounds: int) -> dict[str, list[float]]:
    """The CPU milliseconds of one call each way, `repeats` in a row, the ways in turns."""
    costs: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, call in ways.items():
            for _ in range(20):  # warm: connections open, caches filled
                await call()
            started = time.process_time()
            for _ in range(repeats):
                await call()
            costs[name].append(1000 * (time.process_time() - started) / repeats)
    return costs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.polls", description=__doc__)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    from tests.live import free_port, wait_for_port

    port = free_port()
    env = {**os.environ, "SIMULATOR_LATENCY_SECONDS": "600"}  # in progress for the whole run
    simulator = subprocess.Popen(
        [sys.executable, "manage.py", "simulator", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, simulator)
        import django

        django.setup()
        url = f"http://127.0.0.1:{port}/v1"
        polls = asyncio.run(measure(url, args.repeats, args.rounds))
        creates = asyncio.run(measure_creates(url, args.repeats, args.rounds))
    finally:
        simulator.kill()
        simulator.wait()
    for what, costs in (("a poll", polls), ("a create", creates)):
        columns = (f"{what}, sent by", "ms CPU (each round)", "best / aiohttp alone")
        print_costs(columns, costs, "aiohttp alone", digits=3, ratio_digits=1)
        print()


if __name__ == "__main__":
    main()
