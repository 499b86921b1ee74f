"""Streamed text coalesces in proportion to how far behind the event loop runs: an idle
process sends deltas every STREAM_DELTA_SECONDS, a saturated one fewer and larger, so that
nothing queues for seconds behind them (runs/lag.py)."""

import asyncio
import time

from assistants_app.runs import lag


def block_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # what a saturated process looks like from a callback's view


async def test_an_idle_loop_sends_deltas_at_the_configured_interval(settings):
    settings.STREAM_DELTA_SECONDS = 0.05
    lag.loop_lag()  # the monitor starts
    await asyncio.sleep(0.5)

    assert lag.loop_lag() < 0.02
    assert lag.delta_interval() == 0.05


async def test_a_lagging_loop_coalesces_more_and_recovers(settings):
    settings.STREAM_DELTA_SECONDS, settings.STREAM_DELTA_MAX_SECONDS = 0.05, 1.0
    lag.loop_lag()
    await asyncio.sleep(0.15)
    for _ in range(6):  # every callback of the loop runs 0.2 s late, again and again
        asyncio.get_running_loop().call_soon(block_the_loop, 0.2)
        await asyncio.sleep(0.11)

    assert lag.loop_lag() > 0.05
    assert 0.1 < lag.delta_interval() <= 1.0

    await asyncio.sleep(1.5)  # the load is gone
    assert lag.delta_interval() < 0.08


async def test_coalescing_never_waits_longer_than_the_ceiling(settings):
    settings.STREAM_DELTA_SECONDS, settings.STREAM_DELTA_MAX_SECONDS = 0.05, 0.3
    lag.loop_lag()
    await asyncio.sleep(0.15)
    for _ in range(4):
        asyncio.get_running_loop().call_soon(block_the_loop, 0.5)
        await asyncio.sleep(0.11)

    assert lag.loop_lag() > 0.15
    assert lag.delta_interval() == 0.3
