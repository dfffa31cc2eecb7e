"""The broker-retry pause: doubling to a ceiling, and never outliving shutdown."""

from __future__ import annotations

import asyncio

from trackai_kit.backoff import Backoff


async def test_pauses_double_up_to_the_ceiling() -> None:
    backoff = Backoff(first_s=0.001, ceiling_s=0.004)
    seen = []
    for _ in range(4):
        seen.append(backoff.delay_s)
        await backoff.pause(asyncio.Event())
    assert seen == [0.001, 0.002, 0.004, 0.004]


async def test_shutdown_ends_a_pause_at_once() -> None:
    stop = asyncio.Event()
    pausing = asyncio.create_task(Backoff(first_s=3600).pause(stop))
    await asyncio.sleep(0)  # the pause is waiting
    stop.set()
    await asyncio.wait_for(pausing, timeout=30)  # an hour's pause, over with the stop
