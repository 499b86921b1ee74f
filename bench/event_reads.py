"""What an event read from Redis costs the channel layer's reader: redis-py's own parser, in
Python, against hiredis, its parser in C (a dependency since BENCHMARKS.md's fourteenth step).

Every event a process sends to a thread's group comes back to it from Redis (its sockets are
in the group), and to every other process with sockets there: a streamed answer is a dozen
events. `python -m bench.event_reads` publishes a few thousand `message.delta` events, packed
as the layer packs them, and reads them on a pub/sub connection the way channels_redis's
reader does (`get_message` with a timeout), each parser in turn, and prints the CPU
microseconds per event of reader and publisher together. Needs Redis (REDIS_URL, else
127.0.0.1:6379, database 15).
"""

import argparse
import asyncio
import os
import time

import msgpack
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import _AsyncHiredisParser, _AsyncRESP3Parser

from bench.tables import print_costs

CHANNEL = "bench-event-reads"
EVENT = {"type": "message.delta", "run_id": 123456, "offset": 1200, "text": " a few words" * 6,
         "__origin__": "0" * 32}  # fmt: skip


async def read_cost(url: str, parser_class, events: int) -> float:
    """CPU µs per event published and read back, with `parser_class` on both connections."""
    pool = ConnectionPool.from_url(url, parser_class=parser_class)
    client = Redis(connection_pool=pool)
    pubsub = client.pubsub()
    await pubsub.subscribe(CHANNEL)
    await pubsub.get_message(timeout=1)  # the subscribe's answer
    data = msgpack.packb(EVENT)

    async def publish():
        for _ in range(0, events, 100):  # as the layer's outbox sends: pipelined
            pipeline = client.pipeline(transaction=False)
            for _ in range(100):
                pipeline.publish(CHANNEL, data)
            await pipeline.execute()

    started, read = time.process_time(), 0
    publishing = asyncio.create_task(publish())
    while read < events:
        if await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1):
            read += 1
    await publishing
    spent = time.process_time() - started
    await pubsub.aclose()
    await client.aclose()
    return 1e6 * spent / events


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.event_reads", description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
    parsers = {"redis-py (Python)": _AsyncRESP3Parser, "hiredis (C)": _AsyncHiredisParser}
    costs: dict[str, list[float]] = {name: [] for name in parsers}
    for _ in range(args.rounds):  # in turns, so that a busy moment of the machine hits both
        for name, parser_class in parsers.items():
            costs[name].append(asyncio.run(read_cost(url, parser_class, args.events)))
    columns = ("events read with", "µs CPU an event (each round)", "best / redis-py's")
    print_costs(columns, costs, "redis-py (Python)", digits=1, ratio_digits=2)


if __name__ == "__main__":
    main()
