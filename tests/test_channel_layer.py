"""The Redis pub/sub channel layer (chatsite/channel_layer.py) on the machine's Redis: it
delivers like channels_redis' own, and no socket's publish or subscribe waits for another's."""

import asyncio
import uuid

import pytest

from chatsite.channel_layer import RedisPubSubChannelLayer

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]

REDIS = "redis://127.0.0.1:6379/3"


@pytest.fixture
async def layer():
    layer = RedisPubSubChannelLayer(hosts=[REDIS], prefix=f"test-{uuid.uuid4().hex[:8]}")
    yield layer
    await layer.flush()


async def joined(layer, group: str) -> str:
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


async def test_a_group_event_reaches_every_socket_in_the_group_in_order(layer):
    first, second = await joined(layer, "thread-1"), await joined(layer, "thread-1")
    await asyncio.sleep(0.2)  # the subscription is written; Redis confirms it meanwhile
    for n in range(3):
        await layer.group_send("thread-1", {"type": "run.status", "n": n})
    for channel in (first, second):
        received = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(3)]
        assert [event["n"] for event in received] == [0, 1, 2]


async def test_a_socket_that_left_its_group_gets_nothing_more(layer):
    channel = await joined(layer, "thread-2")
    await layer.group_discard("thread-2", channel)
    await asyncio.sleep(0.2)
    await layer.group_send("thread-2", {"type": "run.status"})
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.5)


async def test_publishes_do_not_wait_for_one_another(layer):
    await joined(layer, "thread-3")  # opens the pub/sub connection
    shard = layer._get_layer()._shards[0]
    publishing, answer = [], asyncio.Event()

    async def slow_redis_publish(channel, message):
        publishing.append(channel)
        await answer.wait()  # Redis has not answered yet

    shard._redis.publish = slow_redis_publish
    sends = [asyncio.create_task(layer.group_send(f"thread-{n}", {"type": "x"})) for n in range(3)]
    try:
        await asyncio.sleep(0.1)
        # channels_redis' own layer holds one lock through each publish: one would be under way.
        assert len(publishing) == 3
    finally:
        answer.set()
        await asyncio.gather(*sends)


async def test_a_connect_does_not_wait_for_publishes_under_way(layer):
    await joined(layer, "thread-4")
    shard = layer._get_layer()._shards[0]
    answer = asyncio.Event()

    async def slow_redis_publish(channel, message):
        await answer.wait()

    shard._redis.publish = slow_redis_publish
    sending = asyncio.create_task(layer.group_send("thread-4", {"type": "x"}))
    await asyncio.sleep(0.05)
    try:
        # A new socket joins another thread's group while that publish waits for Redis.
        await asyncio.wait_for(joined(layer, "thread-5"), 1)
    finally:
        answer.set()
        await sending


async def test_leaving_and_rejoining_a_group_at_once_keeps_the_subscription(layer):
    # The last socket of a thread leaves as a new one joins: Redis must end up subscribed.
    leaving = await joined(layer, "thread-6")
    joining = await layer.new_channel()
    await asyncio.gather(
        layer.group_discard("thread-6", leaving), layer.group_add("thread-6", joining)
    )
    await asyncio.sleep(0.2)
    await layer.group_send("thread-6", {"type": "run.status"})
    assert (await asyncio.wait_for(layer.receive(joining), 5))["type"] == "run.status"
