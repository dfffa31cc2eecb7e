"""The matcher's consumer process on the real broker, for tests: the ``ingest-events`` consumer
with the kit's retries through (short) delay queues, and the outbox relay to ``capi-dispatch``."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import asyncpg

from bench.traffic import hit_event
from trackai.ingestion.v1 import events_pb2 as ingest
from trackai_kit.amqp import AmqpClient, RetryPolicy
from trackai_kit.outbox import OutboxRelay
from trackai_kit.settings import AmqpSettings
from trackai_kit.topology import (
    CAPI_DISPATCH,
    INGEST_EVENTS,
    delay_queues,
    dlq_name,
    matcher_topology,
)
from trackai_matcher.entrypoints.consumer import INGEST_TYPE, IngestConsumer

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
#: Short delays keep the tests quick; the mechanism is the production one.
POLICY = RetryPolicy(delays_ms=(300, 600))


async def depth(amqp_url: str, name: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


class Stack:
    """The matcher's consumer process on real RabbitMQ: consumer with retries, outbox relay."""

    def __init__(self, amqp: AmqpClient, amqp_url: str, pool: asyncpg.Pool) -> None:
        self.amqp = amqp
        self.url = amqp_url
        self.pool = pool

    async def publish(self, event: ingest.IngestEvent) -> None:
        await self.amqp.publish(
            INGEST_EVENTS,
            event.SerializeToString(),
            message_id=event.message_id,
            message_type=INGEST_TYPE,
        )

    async def depth(self, logical: str) -> int:
        return await depth(self.url, self.amqp.name(logical))


@contextlib.asynccontextmanager
async def running(
    make_service: Any, amqp_url: str, amqp_prefix: str, pool: asyncpg.Pool
) -> AsyncIterator[Stack]:
    amqp = AmqpClient(AmqpSettings(url=amqp_url, prefix=amqp_prefix))
    await amqp.declare(matcher_topology())
    await amqp.declare(delay_queues(INGEST_EVENTS, POLICY.delays_ms))
    consumer = IngestConsumer(make_service(pool=pool), reconnect=pool.expire_connections)
    handle = await amqp.consume(INGEST_EVENTS, consumer, retry=POLICY)
    stop = asyncio.Event()
    relay = asyncio.create_task(
        OutboxRelay(pool, amqp, schema="matcher", poll_interval_s=0.2).run(stop)
    )
    try:
        yield Stack(amqp, amqp_url, pool)
    finally:
        stop.set()
        await handle.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(relay, 5)
        await amqp.close()


async def sale_with_a_click(stack: Stack, tenant: str, session: str, order: str) -> None:
    """Publish the visit and wait until it is stored, so the purchase has a click to match."""
    await stack.publish(hit_event(tenant, session, NOW - dt.timedelta(minutes=30)))

    async def stored() -> bool:
        return bool(await stack.pool.fetchval("SELECT count(*) FROM matcher.clicks"))

    await wait_until(stored)


async def purchase_reaches_dispatch(stack: Stack) -> None:
    async def dispatched() -> bool:
        return await stack.depth(CAPI_DISPATCH) == 1

    await wait_until(dispatched)
    assert await stack.depth(dlq_name(INGEST_EVENTS)) == 0
    assert await stack.depth(INGEST_EVENTS) == 0
