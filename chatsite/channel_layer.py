"""channels_redis' pub/sub layer, without the one lock every socket of a process queued on.

channels_redis (4.3) keeps one `asyncio.Lock` per Redis host and takes it for every publish
(held until Redis answers), subscribe and unsubscribe. So a process did one at a time: every
run status, answer and streamed delta of every socket waited for the one before it, and every
connect's and disconnect's (un)subscribe waited behind them all, a turn of the busy event loop
each. Under load that queue was the process's serial bottleneck (BENCHMARKS.md, "The channel
layer's lock": at 1,000 sockets with 200 runs in flight a run's events took 1.8 s to send at
the median, and 100 reconnects 18 s once publishes no longer queued but subscribes did).

- A publish needs no lock: the Redis client takes a connection from its pool for each
  command. Events a task sends one after another still reach Redis in that order, since each
  publish is awaited before the next starts.
- Subscribing and unsubscribing write one command to the pub/sub connection (the answers come
  in through the layer's reader), written whole as they are called, so they keep their order
  without a lock too. The lock stays for the first one, which opens that connection (two
  openers would each make one and lose one's subscriptions), and for `flush`.
"""

import asyncio

from channels_redis import pubsub
from channels_redis.utils import _wrap_close


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


class _LoopLayer(pubsub.RedisPubSubLoopLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._shards = [_Shard(shard.host, self) for shard in self._shards]


class _Shard(pubsub.RedisSingleShardConnection):
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

    def _open(self) -> bool:
        """Whether the pub/sub connection is open and nobody holds the lock (opening it, or
        flushing)."""
        return (
            self._pubsub is not None
            and self._pubsub.connection is not None
            and not self._lock.locked()
        )
