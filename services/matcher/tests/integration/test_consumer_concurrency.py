"""Several consumers on one real RabbitMQ queue, duplicate webhooks and redeliveries: exactly one
conversion per (order, event) and one message to `capi-dispatch`."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest

from bench.traffic import EMAIL
from bench.traffic import conversion_event as conversion
from bench.traffic import hit_event as hit
from trackai.ingestion.v1 import events_pb2 as ingest
from trackai_kit.amqp import AmqpClient, Handler, IncomingMessage
from trackai_kit.postgres import create_pool
from trackai_kit.settings import AmqpSettings, PostgresSettings
from trackai_kit.topology import INGEST_EVENTS, matcher_topology
from trackai_matcher.entrypoints.consumer import INGEST_TYPE, IngestConsumer

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=6)
CONSUMERS = 4
ORDERS = 25


async def publish(amqp: AmqpClient, event: ingest.IngestEvent) -> None:
    await amqp.publish(
        INGEST_EVENTS,
        event.SerializeToString(),
        message_id=event.message_id,
        message_type=INGEST_TYPE,
    )


async def wait_for(check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError("condition not reached in time")


def counting(handler: IngestConsumer, handled: list[str]) -> Handler:
    async def handle(message: IncomingMessage) -> None:
        await handler(message)
        handled.append(message.message_id or "")

    return handle


async def test_concurrent_consumers_register_each_order_once(
    matcher: Any, make_service: Any, amqp_url: str, amqp_prefix: str
) -> None:
    tenant = matcher.registry.add_tenant()
    settings = AmqpSettings(url=amqp_url, prefix=amqp_prefix, prefetch=8)
    publisher = AmqpClient(settings)
    await publisher.declare(matcher_topology())
    hits = [
        hit(tenant, f"sess-conc-{n:05d}", NOW - dt.timedelta(hours=1), ip=f"189.9.9.{n + 1}")
        for n in range(ORDERS)
    ]
    events: list[ingest.IngestEvent] = []
    for n in range(ORDERS):
        session = f"sess-conc-{n:05d}"
        # Each order: the same webhook sent three times by the gateway (three message ids), a
        # "completed" later, and every message published twice (a relay retry).
        for status in [ingest.CONVERSION_STATUS_APPROVED] * 3 + [
            ingest.CONVERSION_STATUS_COMPLETED
        ]:
            events.append(conversion(tenant, f"ORD-{n}", NOW, status=status, sck=session))
    distinct = len(hits) + len(events)
    handled: list[str] = []
    clients, pools = [], []
    try:
        for event in hits + hits:
            await publish(publisher, event)
        handles = []
        for _ in range(CONSUMERS):
            pool = await create_pool(
                PostgresSettings(url=matcher.database_url, pool_max=2), schema="matcher"
            )
            client = AmqpClient(settings)
            pools.append(pool)
            clients.append(client)
            consumer = IngestConsumer(make_service(pool=pool))
            handles.append(await client.consume(INGEST_EVENTS, counting(consumer, handled)))

        def processed(count: int) -> Any:
            async def check() -> bool:
                seen = await matcher.pool.fetchval("SELECT count(*) FROM matcher.inbox")
                return bool(seen == count)

            return check

        # Sessions first (as in life, the click precedes the purchase), then the webhooks.
        await wait_for(processed(len(hits)))
        for event in events + events:
            await publish(publisher, event)
        await wait_for(processed(distinct))

        async def every_delivery_handled() -> bool:
            # Every published copy went through a consumer (duplicates included), not just the
            # distinct ones the inbox counts: nothing is still on its way when we look.
            return len(handled) == 2 * (len(hits) + len(events))

        await wait_for(every_delivery_handled)
        for handle in handles:
            await handle.cancel()
    finally:
        for client in clients:
            await client.close()
        for pool in pools:
            await pool.close()
        await publisher.close()

    registry = await matcher.fetch(
        "SELECT order_id, event_name FROM matcher.dedupe_registry WHERE tenant_id = $1", tenant
    )
    assert sorted(r["order_id"] for r in registry) == sorted(f"ORD-{n}" for n in range(ORDERS))
    assert {r["event_name"] for r in registry} == {"Purchase"}
    requests = await matcher.dispatched()
    assert len(requests) == ORDERS
    assert len({r.event.event_id for r in requests}) == ORDERS
    log = await matcher.fetch(
        "SELECT disposition, count(*) AS n FROM matcher.conversion_log GROUP BY 1"
    )
    assert {r["disposition"]: r["n"] for r in log} == {"queued": ORDERS, "duplicate": 3 * ORDERS}
    matches = await matcher.fetch("SELECT stage, session_id, order_id FROM matcher.matches")
    assert len(matches) == ORDERS
    assert all(m["session_id"] == f"sess-conc-{int(m['order_id'][4:]):05d}" for m in matches)
    clicks = await matcher.fetch("SELECT hits FROM matcher.clicks")
    assert [c["hits"] for c in clicks] == [1] * ORDERS  # the published-twice hit counted once


async def test_a_redelivered_message_changes_nothing(
    matcher: Any, consumer: IngestConsumer, amqp_url: str, amqp_prefix: str
) -> None:
    """The broker redelivers what a consumer committed but never acknowledged (as when a pod dies
    between its commit and its ack): the redelivery changes nothing."""
    tenant = matcher.registry.add_tenant()
    lead = hit(tenant, "sess-redeliv-01", NOW, kind=ingest.HIT_TYPE_LEAD, em=EMAIL)
    order = conversion(tenant, "ORD-1", NOW + dt.timedelta(minutes=5))
    settings = AmqpSettings(url=amqp_url, prefix=amqp_prefix, prefetch=1)
    client = AmqpClient(settings)
    await client.declare(matcher_topology())
    deliveries: list[tuple[str, bool]] = []
    states: list[dict[str, Any]] = []

    async def commit_then_fail_the_first_time(message: IncomingMessage) -> None:
        await consumer(message)
        deliveries.append((message.message_id or "", bool(message.redelivered)))
        states.append(await state())
        if not message.redelivered:
            # Committed, then the ack never comes: without a retry policy the kit hands the
            # message back to the broker (nack + requeue), which delivers it again.
            raise ConnectionError("the pod died after its commit")

    async def state() -> dict[str, Any]:
        rows = await matcher.fetch(
            "SELECT (SELECT count(*) FROM matcher.inbox) AS inbox, "
            "(SELECT hits FROM matcher.clicks) AS hits, "
            "(SELECT count(*) FROM matcher.conversion_log) AS log, "
            "(SELECT count(*) FROM matcher.outbox WHERE exchange = '') AS outbox, "
            "(SELECT conversions FROM matcher.match_daily_stats) AS stats"
        )
        return dict(rows[0])

    try:
        handle = await client.consume(INGEST_EVENTS, commit_then_fail_the_first_time)
        await publish(client, lead)

        async def lead_redelivered() -> bool:
            return (lead.message_id, True) in deliveries

        await wait_for(lead_redelivered)
        await publish(client, order)

        async def order_redelivered() -> bool:
            return (order.message_id, True) in deliveries

        await wait_for(order_redelivered)
        await handle.cancel()
    finally:
        await client.close()
    assert deliveries == [
        (lead.message_id, False),
        (lead.message_id, True),
        (order.message_id, False),
        (order.message_id, True),
    ], "each message came twice, the second time as a broker redelivery"
    after_order = {"inbox": 2, "hits": 1, "log": 1, "outbox": 1, "stats": 1}
    assert states[0] == states[1], "the redelivered lead changed nothing"
    assert states[2] == states[3] == after_order, "the redelivered order changed nothing"
