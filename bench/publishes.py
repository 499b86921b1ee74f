"""What a publish costs the channel layer's sender: redis-py's client, which takes a
connection from its pool, sends under its retry wrapper and gives the connection back for
every command (a pipeline of objects of its own for several), against the layer's own
connection (chatsite/channel_layer.py, sixteenth step of BENCHMARKS.md's "Cost per answer"),
the commands packed by redis-py and written at once.

A streamed answer is a dozen events, each published once, most of them alone (the sender
takes whatever waits: at a light load, one). `python -m bench.publishes` publishes a few
thousand `message.delta` events, packed as the layer packs them, one at a time and in tens,
each way in turn, and prints the CPU microseconds per event. Needs Redis (REDIS_URL, else
127.0.0.1:6379, database 15).
"""

import argparse
import os
import sys
import time
from pathlib import Path

import msgpack
import uvloop

from bench.tables import print_costs

CHANNEL = "bench-publishes"
EVENT = {"type": "message.delta", "run_id": 123456, "offset": 1200, "text": " a few words" * 6,
         "__origin__": "0" * 32}  # fmt: skip


async def publish_cost(url: str, way: str, events: int, batch: int) -> float:
    """CPU µs per event published `way` ("client": redis-py's, as the layer's outbox sent
    them before; "layer": the layer's own `_publish`), `batch` at a time."""
    from chatsite.channel_layer import RedisPubSubChannelLayer

    layer = RedisPubSubChannelLayer(hosts=[url])
    shard = layer._get_layer()._shards[0]
    shard._ensure_redis()
    client, data = shard._redis, msgpack.packb(EVENT)

    async def send(waiting: int) -> None:
        if way == "layer":
            await shard._publish([(CHANNEL, data)] * waiting)
        elif waiting == 1:
            await client.publish(CHANNEL, data)
        else:
            pipeline = client.pipeline(transaction=False)
            for _ in range(waiting):
                pipeline.publish(CHANNEL, data)
            await pipeline.execute()

    await send(batch)  # connected, warmed up
    started = time.process_time()
    for _ in range(events // batch):
        await send(batch)
    spent = time.process_time() - started
    await layer.flush()
    return 1e6 * spent / (events // batch * batch)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.publishes", description=__doc__)
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
    ways = {
        f"{label}, {batch} at a time": (way, batch)
        for batch in (1, 10)
        for way, label in (("client", "redis-py's client"), ("layer", "the layer's"))
    }
    costs: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.rounds):  # in turns, so that a busy moment of the machine hits all
        for name, (way, batch) in ways.items():
            costs[name].append(uvloop.run(publish_cost(url, way, args.events, batch)))
    columns = ("events published by", "µs CPU an event (each round)", "best / the client's alone")
    print_costs(columns, costs, "redis-py's client, 1 at a time", digits=1, ratio_digits=2)


if __name__ == "__main__":
    main()
