"""The channel layers: channels_redis' pub/sub layer and Channels' in-memory one, each
delivering an event to the sockets of its own process at once.

Under load every turn of the event loop an event waits for is a lag of the whole process
(BENCHMARKS.md, "Latency at saturation, eighth step": at 1,000 sockets and 200 streamed runs a turn
took 150 ms, and a token's way to its page took seven). The libraries' layers spend turns on
the way to a socket of the very process that sends: channels_redis awaits Redis's answer to
the publish, then reads the event back from Redis before a socket of the same process gets it;
Channels' in-memory layer starts a task per socket and waits for them all. Here a group event
goes into the queue of each socket of this process when it is sent (the socket has it on the
next turn), and to Redis for the other processes' sockets, from an outbox (below).

The pub/sub layer also does without channels_redis' one lock per Redis host, which it takes
for every publish (held until Redis answers), subscribe and unsubscribe: under load that queue
was the process's serial bottleneck (BENCHMARKS.md, "The channel layer's lock").

- Publishes go out from an outbox, one task per Redis host sending everything waiting in one
  write on a connection of its own: in the order they were sent, without the sender waiting
  for Redis, and under load many in one round trip. A publish Redis refuses is logged and
  lost: an event is a doorbell, the database is the record, and a page asks for what it
  missed (`hello`).
- An event carries the tag of the layer that sent it (ORIGIN; one per event loop, which serves
  its own sockets), so that each drops its own events when Redis hands them back (its sockets
  had them already); the tag is taken off before a socket sees an event.
- Subscribing and unsubscribing write one command to the pub/sub connection (the answers come
  in through the layer's reader), written whole as they are called, so they keep their order
  without a lock too. The lock stays for the first one, which opens that connection (two
  openers would each make one and lose one's subscriptions), and for `flush`.
"""

import asyncio
import collections
import logging
import time
import uuid
from contextlib import suppress

import redis.exceptions
from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer as ChannelsInMemoryChannelLayer
from channels_redis import pubsub
from channels_redis.serializers import MsgPackSerializer, msgpack
from channels_redis.utils import _wrap_close

log = logging.getLogger(__name__)

# What a connection Redis dropped raises (redis-py's own, and the socket's).
CONNECTION_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
ORIGIN = "__origin__"  # the key of the sending loop layer's tag, in Redis only
OUTBOX_LIMIT = 10_000  # events waiting for Redis past which the oldest are dropped


class RedisPubSubChannelLayer(pubsub.RedisPubSubChannelLayer):
    def _get_layer(self):
        # channels_redis' own, making the loop layer below instead of its own.
        loop = asyncio.get_running_loop()
        try:
            return self._layers[loop]
        except KeyError:
            layer = self._layers[loop] = _LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            _wrap_close(self, loop)
            return layer

    def deserialize(self, message):
        event = super().deserialize(message)
        event.pop(ORIGIN, None)  # a socket never sees the tag
        return event


class _LoopLayer(pubsub.RedisPubSubLoopLayer):
    """The layer of one event loop, whose sockets it serves: its tag is its own."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._shards = [_Shard(shard.host, self) for shard in self._shards]
        self.origin = uuid.uuid4().hex
        # Packed by msgpack as configured (not encrypted, no random prefix), an event of ours
        # ends with its tag, the last key sent: told apart without unpacking it.
        serializer = self.channel_layer._serializer
        plain = (
            isinstance(serializer, MsgPackSerializer)
            and serializer.crypter is None
            and not serializer.random_prefix_length
        )
        self._own_tail = msgpack.packb(ORIGIN) + msgpack.packb(self.origin) if plain else None

    def sent_here(self, message: bytes) -> bool:
        """Whether an event Redis hands back was sent by this layer (its sockets have it)."""
        if self._own_tail is not None:
            return message.endswith(self._own_tail)
        try:
            return self.channel_layer._serializer.deserialize(message).get(ORIGIN) == self.origin
        except Exception:
            return False  # not one of ours: the socket's receive says what is wrong with it

    async def group_send(self, group, message):
        group_channel = self._get_group_channel_name(group)
        data = self.channel_layer.serialize({**message, ORIGIN: self.origin})
        shard = self._get_shard(group_channel)
        shard.deliver_here(group_channel, data)
        shard.publish_soon(group_channel, data)


class _Shard(pubsub.RedisSingleShardConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._outbox: collections.deque = collections.deque()
        self._sender: asyncio.Task | None = None
        self._publisher = None  # the sender's own connection to Redis (made on first use)

    def publish_soon(self, channel, message) -> None:
        """Queue a publish; the sender task sends it with whatever else waits, in order."""
        if len(self._outbox) >= OUTBOX_LIMIT:
            self._outbox.popleft()
            log.warning("channel layer: Redis is not keeping up; an event was dropped")
        self._outbox.append((channel, message))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send_outbox())

    async def _send_outbox(self) -> None:
        while self._outbox:
            waiting = list(self._outbox)
            self._outbox.clear()
            try:
                try:
                    await self._publish(waiting)
                except CONNECTION_ERRORS:
                    # A connection Redis dropped (a restart, a client timeout): sent again on a
                    # new one, as redis-py's own retry does.
                    await self._close_publisher()
                    await self._publish(waiting)
            except Exception as error:
                await self._close_publisher()
                log.warning("channel layer: %d events not published (%r)", len(waiting), error)

    async def _publish(self, waiting: list) -> None:
        """PUBLISH each event, in one write, on this shard's own connection, and read Redis's
        answers (how many processes had each). The sender task is its only user, so answers
        come in the order of the commands. Through redis-py's client each command also took a
        connection from its pool and gave it back, under its retry wrapper, and a pipeline
        built objects of its own: a quarter of a publish's CPU (BENCHMARKS.md, "Cost per
        answer", sixteenth step)."""
        if self._publisher is None:
            self._ensure_redis()
            pool = self._redis.connection_pool
            # Named, so that Redis's CLIENT LIST tells it from the pool's connections.
            name = f"chat-publisher-{self.channel_layer.origin}"
            publisher = pool.connection_class(**{**pool.connection_kwargs, "client_name": name})
            await publisher.connect()
            self._publisher = publisher
        publisher = self._publisher
        commands = [("PUBLISH", channel, message) for channel, message in waiting]
        await publisher.send_packed_command(publisher.pack_commands(commands), check_health=False)
        for _ in waiting:
            await publisher.read_response()

    async def _close_publisher(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            with suppress(Exception):
                await publisher.disconnect()

    async def publish(self, channel, message):
        self._ensure_redis()
        await self._redis.publish(channel, message)

    async def subscribe(self, channel):
        if not self._open():
            await super().subscribe(channel)
        elif channel not in self._subscribed_to:
            # Marked first, so that an unsubscribe called meanwhile is written after this.
            self._subscribed_to.add(channel)
            try:
                await self._pubsub.subscribe(channel)
            except BaseException:
                self._subscribed_to.discard(channel)
                raise

    async def unsubscribe(self, channel):
        if not self._open():
            await super().unsubscribe(channel)
        elif channel in self._subscribed_to:
            self._subscribed_to.remove(channel)
            await self._pubsub.unsubscribe(channel)

    async def flush(self):
        if self._sender is not None:
            self._sender.cancel()
            with suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
        self._outbox.clear()
        await self._close_publisher()
        await super().flush()

    def deliver_here(self, channel: str, data: bytes) -> None:
        """Into the queues of this loop's sockets on `channel` (a group's, or one socket's), as
        the reader puts what Redis hands it."""
        super()._receive_message({"channel": channel, "data": data})

    def _receive_message(self, message):
        if message is not None and self.channel_layer.sent_here(message["data"]):
            return  # this process's own event: its sockets had it when it was sent
        super()._receive_message(message)

    def _open(self) -> bool:
        """Whether the pub/sub connection is open and nobody holds the lock (opening it, or
        flushing)."""
        return (
            self._pubsub is not None
            and self._pubsub.connection is not None
            and not self._lock.locked()
        )


class InMemoryChannelLayer(ChannelsInMemoryChannelLayer):
    """Channels' in-memory layer (one process: the embedded default), sending a group event
    into each socket's queue at once instead of from a task per socket, and looking for
    expired events and groups once a second instead of on every send (a look at every socket
    of the process each time)."""

    CLEAN_EVERY_SECONDS = 1.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._cleaned_at = 0.0

    def _clean_expired(self):
        now = time.monotonic()
        if now - self._cleaned_at >= self.CLEAN_EVERY_SECONDS:
            self._cleaned_at = now
            super()._clean_expired()

    async def group_send(self, group, message):
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            with suppress(ChannelFull):
                await self.send(channel, message)  # suspends nowhere: a put into a queue
