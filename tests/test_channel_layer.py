"""The channel layers (chatsite/channel_layer.py): the Redis pub/sub one on the machine's Redis
delivers like channels_redis' own, to this process's sockets at once and to the others' through
Redis, and no socket's publish or subscribe waits for another's; the in-memory one sends a
group event without a turn of the event loop."""

import asyncio
import uuid

import pytest
import redis.asyncio
import redis.exceptions

from chatsite import channel_layer
from chatsite.channel_layer import InMemoryChannelLayer, RedisPubSubChannelLayer

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


class StalledPublisher:
    """Stands in for a shard's connection to Redis: each write of publishes waits for its
    answers until `answer` is set."""

    def __init__(self):
        self.answer = asyncio.Event()
        self.batches: list[list[str]] = []

    def pack_commands(self, commands):
        return [channel for _, channel, _ in commands]

    async def send_packed_command(self, channels, check_health=True):
        self.batches.append(channels)

    async def read_response(self):
        await self.answer.wait()
        return 1

    async def disconnect(self):
        pass


def stall_publishes(layer) -> StalledPublisher:
    stalled = layer._get_layer()._shards[0]._publisher = StalledPublisher()
    return stalled


async def test_a_socket_of_the_sending_process_has_the_event_before_redis_answers(layer):
    channel = await joined(layer, "thread-3")
    stalled = stall_publishes(layer)
    other_turns = []
    asyncio.get_running_loop().call_soon(other_turns.append, "ran")
    await layer.group_send("thread-3", {"type": "run.status", "n": 1})
    # Sent without a turn of the event loop: nothing else ran meanwhile, and the socket's
    # queue holds it (channels_redis' layer waits for Redis's answer, then reads it back).
    assert other_turns == []
    assert layer._get_layer().channels[channel].qsize() == 1
    assert await asyncio.wait_for(layer.receive(channel), 1) == {"type": "run.status", "n": 1}
    stalled.answer.set()


async def test_publishes_waiting_for_redis_go_in_one_round_trip_in_order(layer):
    await joined(layer, "thread-4")
    stalled = stall_publishes(layer)
    for n in range(5):
        await layer.group_send(f"thread-{n}", {"type": "x"})
    await asyncio.sleep(0.05)
    for n in range(5, 8):  # sent while the first round trip is under way
        await layer.group_send(f"thread-{n}", {"type": "x"})
    stalled.answer.set()
    await asyncio.sleep(0.05)
    prefix = layer._get_layer().prefix
    assert stalled.batches == [
        [f"{prefix}__group__thread-{n}" for n in range(5)],
        [f"{prefix}__group__thread-{n}" for n in range(5, 8)],
    ]


async def test_another_process_gets_each_event_once_in_order_and_so_does_this_one(layer):
    other_process = RedisPubSubChannelLayer(hosts=[REDIS], prefix=layer._get_layer().prefix)
    try:
        here, there = await joined(layer, "thread-5"), await joined(other_process, "thread-5")
        await asyncio.sleep(0.2)  # the subscriptions are written; Redis confirms them meanwhile
        for n in range(3):
            await layer.group_send("thread-5", {"type": "run.status", "n": n})
        for receiver, channel in ((layer, here), (other_process, there)):
            received = [await asyncio.wait_for(receiver.receive(channel), 5) for _ in range(3)]
            # The sender's tag is Redis's business: no socket sees it.
            assert received == [{"type": "run.status", "n": n} for n in range(3)]
        # Redis hands the sender its own events back too: they are dropped, not sent again.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(layer.receive(here), 0.5)
    finally:
        await other_process.flush()


async def test_a_publish_redis_refuses_is_logged_and_the_next_goes_out(layer, caplog):
    other_process = RedisPubSubChannelLayer(hosts=[REDIS], prefix=layer._get_layer().prefix)
    try:
        there = await joined(other_process, "thread-6")
        here = await joined(layer, "thread-6")
        await asyncio.sleep(0.2)
        refusing = layer._get_layer()._shards[0]._publisher = StalledPublisher()

        async def refuse():
            raise redis.exceptions.ResponseError("OOM command not allowed")

        refusing.read_response = refuse
        await layer.group_send("thread-6", {"type": "run.status", "n": 1})
        await asyncio.sleep(0.05)
        assert "1 events not published" in caplog.text
        # This process's socket had it all the same; the other process's did not.
        assert (await asyncio.wait_for(layer.receive(here), 1))["n"] == 1
        # The next goes out on a connection of its own again.
        await layer.group_send("thread-6", {"type": "run.status", "n": 2})
        assert (await asyncio.wait_for(other_process.receive(there), 5))["n"] == 2
    finally:
        await other_process.flush()


@pytest.mark.parametrize("keys", [None, ["an encryption key"]], ids=["msgpack", "encrypted"])
async def test_a_process_tells_its_own_events_from_another_process_s(keys):
    options = {"symmetric_encryption_keys": keys} if keys else {}
    layer = RedisPubSubChannelLayer(hosts=[REDIS], **options)
    other_process = RedisPubSubChannelLayer(hosts=[REDIS], **options)
    here, there = layer._get_layer(), other_process._get_layer()
    event = {"type": "message.delta", "run_id": 1, "offset": 0, "text": "__origin__"}
    ours = layer.serialize({**event, channel_layer.ORIGIN: here.origin})
    theirs = other_process.serialize({**event, channel_layer.ORIGIN: there.origin})
    assert here.sent_here(ours) and not here.sent_here(theirs)
    assert not here.sent_here(layer.serialize(event))  # sent by a layer that tags nothing
    assert layer.deserialize(theirs) == event


async def test_past_the_outbox_limit_the_oldest_waiting_events_are_dropped(layer, monkeypatch):
    monkeypatch.setattr(channel_layer, "OUTBOX_LIMIT", 3)
    await joined(layer, "thread-7")
    stalled = stall_publishes(layer)
    await layer.group_send("thread-7", {"type": "x"})  # under way: Redis holds it
    await asyncio.sleep(0.05)
    for n in range(5):
        await layer.group_send(f"thread-{n}", {"type": "x"})
    stalled.answer.set()
    await asyncio.sleep(0.05)
    prefix = layer._get_layer().prefix
    assert stalled.batches[1] == [f"{prefix}__group__thread-{n}" for n in (2, 3, 4)]


async def test_a_connect_does_not_wait_for_publishes_under_way(layer):
    await joined(layer, "thread-4")
    stalled = stall_publishes(layer)
    await layer.group_send("thread-4", {"type": "x"})
    await asyncio.sleep(0.05)
    try:
        # A new socket joins another thread's group while that publish waits for Redis.
        await asyncio.wait_for(joined(layer, "thread-5"), 1)
    finally:
        stalled.answer.set()


async def test_leaving_and_rejoining_a_group_at_once_keeps_the_subscription(layer):
    # The last socket of a thread leaves as a new one joins: Redis must end up subscribed.
    leaving = await joined(layer, "thread-6")
    joining = await layer.new_channel()
    await asyncio.gather(
        layer.group_discard("thread-6", leaving), layer.group_add("thread-6", joining)
    )
    await asyncio.sleep(0.2)
    # Sent by another process, so that it can only come through Redis.
    other_process = RedisPubSubChannelLayer(hosts=[REDIS], prefix=layer._get_layer().prefix)
    try:
        await other_process.group_send("thread-6", {"type": "run.status"})
        assert (await asyncio.wait_for(layer.receive(joining), 5))["type"] == "run.status"
    finally:
        await other_process.flush()


async def test_in_memory_a_group_event_is_in_every_socket_queue_without_a_turn_of_the_loop():
    layer = InMemoryChannelLayer()
    channels = [await layer.new_channel() for _ in range(3)]
    for channel in channels:
        await layer.group_add("thread-8", channel)
    other_turns = []
    asyncio.get_running_loop().call_soon(other_turns.append, "ran")
    await layer.group_send("thread-8", {"type": "run.status"})
    # Channels' own layer sends from a task per socket and waits for them: turns of the loop.
    assert other_turns == []
    for channel in channels:
        assert await asyncio.wait_for(layer.receive(channel), 1) == {"type": "run.status"}


async def test_in_memory_a_socket_that_left_gets_nothing_and_full_queues_are_skipped():
    layer = InMemoryChannelLayer(capacity=1)
    staying, leaving = await layer.new_channel(), await layer.new_channel()
    for channel in (staying, leaving):
        await layer.group_add("thread-9", channel)
    await layer.group_discard("thread-9", leaving)
    await layer.group_send("thread-9", {"type": "run.status", "n": 1})
    await layer.group_send("thread-9", {"type": "run.status", "n": 2})  # its queue is full
    assert await layer.receive(staying) == {"type": "run.status", "n": 1}
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(leaving), 0.2)


async def test_an_event_sent_from_another_event_loop_of_the_process_reaches_this_one(layer):
    # Each event loop's layer serves its own sockets: another loop's events come through Redis.
    channel = await joined(layer, "thread-10")
    await asyncio.sleep(0.2)

    def send_from_another_loop():
        async def send():
            await layer.group_send("thread-10", {"type": "run.status"})
            await asyncio.sleep(0.2)  # its outbox goes out before the loop closes

        asyncio.run(send())

    await asyncio.to_thread(send_from_another_loop)
    assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "run.status"}


async def test_events_from_redis_are_read_with_hiredis(layer):
    # Every event comes back from Redis to each process with sockets in its group: read in
    # C it costs the reader 0.6 of what redis-py's Python parser does (bench/event_reads.py).
    from redis.asyncio.connection import _AsyncHiredisParser

    channel = await joined(layer, "thread-parsed")
    await asyncio.sleep(0.2)
    shard = layer._get_layer()._shards[0]
    await layer.group_send("thread-parsed", {"type": "run.status"})
    assert (await asyncio.wait_for(layer.receive(channel), 5))["type"] == "run.status"

    assert isinstance(shard._pubsub.connection._parser, _AsyncHiredisParser)


async def test_a_publishing_connection_redis_dropped_is_replaced_and_nothing_is_lost(layer):
    other_process = RedisPubSubChannelLayer(hosts=[REDIS], prefix=layer._get_layer().prefix)
    admin = redis.asyncio.Redis.from_url(REDIS)
    try:
        there = await joined(other_process, "thread-11")
        await asyncio.sleep(0.2)
        await layer.group_send("thread-11", {"type": "run.status", "n": 1})
        assert (await asyncio.wait_for(other_process.receive(there), 5))["n"] == 1
        name = f"chat-publisher-{layer._get_layer().origin}"
        (publisher,) = [c for c in await admin.client_list() if c["name"] == name]

        await admin.client_kill_filter(_id=publisher["id"])  # as a restart or timeout would
        await layer.group_send("thread-11", {"type": "run.status", "n": 2})

        assert (await asyncio.wait_for(other_process.receive(there), 5))["n"] == 2
        assert [c["name"] for c in await admin.client_list()].count(name) == 1
    finally:
        await admin.aclose()
        await other_process.flush()


async def test_a_flushed_layer_leaves_no_publishing_connection_behind(layer):
    admin = redis.asyncio.Redis.from_url(REDIS)
    try:
        await joined(layer, "thread-12")
        await layer.group_send("thread-12", {"type": "run.status"})
        await asyncio.sleep(0.1)
        name = f"chat-publisher-{layer._get_layer().origin}"
        assert name in [c["name"] for c in await admin.client_list()]

        await layer.flush()
        await asyncio.sleep(0.1)

        assert name not in [c["name"] for c in await admin.client_list()]
    finally:
        await admin.aclose()
