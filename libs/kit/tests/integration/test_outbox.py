"""The outbox relay publishes each committed row exactly once and rides out a broker outage."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from opentelemetry import trace

from trackai_kit.amqp import AmqpClient, IncomingMessage
from trackai_kit.outbox import (
    OutboxRelay,
    enqueue,
    enqueue_from_sql,
    enqueue_params,
    enqueue_sql,
    outbox_ddl,
    outbox_drop_ddl,
)
from trackai_kit.postgres import create_pool
from trackai_kit.settings import AmqpSettings, PostgresSettings
from trackai_kit.topology import INGEST_EVENTS, ingestion_topology

pytestmark = pytest.mark.integration
SCHEMA = "kitbox"


@pytest_asyncio.fixture(loop_scope="session")
async def pool(empty_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(PostgresSettings(url=empty_database_url, pool_max=6), schema=SCHEMA)
    async with pool.acquire() as conn:
        await conn.execute(f"CREATE SCHEMA {SCHEMA}")
        await conn.execute(outbox_ddl(SCHEMA))
    yield pool
    await pool.close()


@pytest_asyncio.fixture(loop_scope="session")
async def amqp(amqp_url: str, amqp_prefix: str) -> AsyncIterator[AmqpClient]:
    async with AmqpClient(AmqpSettings(url=amqp_url, prefix=amqp_prefix)) as client:
        await client.declare(ingestion_topology())
        yield client


async def _enqueue(pool: asyncpg.Pool, ids: list[str]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for message_id in ids:
            await enqueue(
                conn,
                schema=SCHEMA,
                routing_key=INGEST_EVENTS,
                message_id=message_id,
                message_type="test.Event",
                body=message_id.encode(),
            )


async def _collect(amqp: AmqpClient, expected: int, timeout_s: float = 5.0) -> Counter[str]:
    received: Counter[str] = Counter()
    enough = asyncio.Event()

    async def handler(message: IncomingMessage) -> None:
        received[message.message_id or ""] += 1
        if sum(received.values()) >= expected:
            enough.set()

    consumer = await amqp.consume(INGEST_EVENTS, handler)
    try:
        await asyncio.wait_for(enough.wait(), timeout_s)
        await asyncio.sleep(0.3)  # a duplicate would arrive right behind
    finally:
        await consumer.cancel()
    return received


async def test_enqueue_is_idempotent_and_transactional(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        async with conn.transaction():
            assert await enqueue(
                conn, schema=SCHEMA, routing_key="q", message_id="a", message_type="t", body=b"1"
            )
            assert not await enqueue(
                conn, schema=SCHEMA, routing_key="q", message_id="a", message_type="t", body=b"2"
            )
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await enqueue(
                    conn, schema=SCHEMA, routing_key="q", message_id="b", message_type="t", body=b""
                )
                raise RuntimeError("business logic failed")
        rows = await conn.fetch(f"SELECT message_id, body, headers FROM {SCHEMA}.outbox")
    assert [(r["message_id"], r["body"]) for r in rows] == [("a", b"1")]
    assert isinstance(rows[0]["headers"], dict)


async def test_enqueue_folds_into_the_callers_own_statement(pool: asyncpg.Pool) -> None:
    """One statement writes business rows and enqueues messages for exactly the rows it inserted
    (``enqueue_from_sql``), or one row and its message from parameters (``enqueue_sql``)."""
    things = f"{SCHEMA}.things"
    per_row = f"""
WITH inserted AS (
    INSERT INTO {things} SELECT unnest($1::text[]) ON CONFLICT DO NOTHING RETURNING id
), to_enqueue AS (
    SELECT id AS message_id, '' AS exchange, 'q' AS routing_key, 't' AS message_type,
           convert_to(id, 'UTF8') AS body, '{{}}'::jsonb AS headers
    FROM inserted
), enqueued AS ({enqueue_from_sql(SCHEMA, "to_enqueue")})
SELECT count(*) FROM inserted"""
    one = f"""
WITH thing AS (INSERT INTO {things} VALUES ($1)), enqueued AS ({enqueue_sql(SCHEMA, first_param=2)})
SELECT 1"""
    async with pool.acquire() as conn:
        await conn.execute(f"CREATE TABLE {things} (id text PRIMARY KEY)")
        await conn.execute(f"INSERT INTO {things} VALUES ('old')")
        assert await conn.fetchval(per_row, ["old", "new"]) == 1
        with trace.get_tracer(__name__).start_as_current_span("accept"):
            params = enqueue_params(routing_key="q", message_id="p", message_type="t", body=b"p")
        await conn.execute(one, "p", *params)
        rows = await conn.fetch(
            f"SELECT message_id, body, headers FROM {SCHEMA}.outbox ORDER BY id"
        )
    assert [(r["message_id"], r["body"]) for r in rows] == [("new", b"new"), ("p", b"p")]
    assert "traceparent" in rows[1]["headers"]


async def test_concurrent_relays_publish_each_committed_row_once(
    pool: asyncpg.Pool, amqp: AmqpClient
) -> None:
    ids = [f"evt-{i}" for i in range(120)]
    await _enqueue(pool, ids[:60])
    await _enqueue(pool, ids[60:])
    relays = [OutboxRelay(pool, amqp, schema=SCHEMA, batch_size=25) for _ in range(3)]

    async def drain(relay: OutboxRelay) -> int:
        total = 0
        while published := await relay.relay_once():
            total += published
        return total

    totals = await asyncio.gather(*(drain(r) for r in relays))
    assert sum(totals) == 120
    received = await _collect(amqp, 120)
    assert set(received) == set(ids)
    assert max(received.values()) == 1
    async with pool.acquire() as conn:
        pending = await conn.fetchval(
            f"SELECT count(*) FROM {SCHEMA}.outbox WHERE published_at IS NULL"
        )
    assert pending == 0
    assert await relays[0].relay_once() == 0


async def test_broker_outage_leaves_rows_pending_then_they_go_out(
    pool: asyncpg.Pool, amqp: AmqpClient, amqp_url: str, amqp_prefix: str
) -> None:
    await _enqueue(pool, ["o1", "o2", "o3"])
    down = AmqpClient(
        AmqpSettings(url="amqp://guest:guest@127.0.0.1:9/", prefix=amqp_prefix, connect_timeout_s=1)
    )
    relay_down = OutboxRelay(pool, down, schema=SCHEMA)
    assert await relay_down.relay_once() == 0
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT attempts, last_error, published_at FROM {SCHEMA}.outbox ORDER BY id"
        )
    assert [r["attempts"] for r in rows] == [1, 1, 1]
    assert all(r["published_at"] is None and r["last_error"] for r in rows)
    await down.close()

    assert await OutboxRelay(pool, amqp, schema=SCHEMA).relay_once() == 3
    received = await _collect(amqp, 3)
    assert received == Counter({"o1": 1, "o2": 1, "o3": 1})


async def test_run_wakes_on_notify_and_stops_promptly(pool: asyncpg.Pool, amqp: AmqpClient) -> None:
    # The poll interval is far longer than the test: only NOTIFY can explain a quick publish.
    relay = OutboxRelay(pool, amqp, schema=SCHEMA, poll_interval_s=30)
    stop = asyncio.Event()
    runner = asyncio.create_task(relay.run(stop))
    await asyncio.sleep(0.3)  # let it LISTEN and find the outbox empty
    with trace.get_tracer("test").start_as_current_span("webhook") as span:
        await _enqueue(pool, ["n1"])
        trace_id = span.get_span_context().trace_id
    traced: list[int] = []

    async def handler(message: IncomingMessage) -> None:
        traced.append(trace.get_current_span().get_span_context().trace_id)

    started = time.monotonic()
    consumer = await amqp.consume(INGEST_EVENTS, handler)
    try:
        while not traced and time.monotonic() - started < 5:
            await asyncio.sleep(0.05)
    finally:
        await consumer.cancel()
    assert traced == [trace_id]  # the consumer continues the trace of the enqueuing transaction
    assert time.monotonic() - started < 5
    stop.set()
    await asyncio.wait_for(runner, 2)


async def test_run_backs_off_while_broker_is_down(pool: asyncpg.Pool, amqp_prefix: str) -> None:
    await _enqueue(pool, ["b1"])
    down = AmqpClient(
        AmqpSettings(url="amqp://guest:guest@127.0.0.1:9/", prefix=amqp_prefix, connect_timeout_s=1)
    )
    stop = asyncio.Event()
    runner = asyncio.create_task(
        OutboxRelay(pool, down, schema=SCHEMA, poll_interval_s=0.1).run(stop)
    )
    await asyncio.sleep(1.5)
    stop.set()
    await asyncio.wait_for(runner, 2)  # returns promptly, did not raise
    async with pool.acquire() as conn:
        attempts = await conn.fetchval(
            f"SELECT attempts FROM {SCHEMA}.outbox WHERE message_id='b1'"
        )
    # Without back-off a 0.1 s poll would have tried ~15 times in 1.5 s.
    assert 1 <= attempts <= 5
    await down.close()


async def test_drop_ddl_removes_table_and_trigger(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute(outbox_drop_ddl(SCHEMA))
        assert await conn.fetchval("SELECT to_regclass('kitbox.outbox')") is None
        assert (
            await conn.fetchval("SELECT count(*) FROM pg_proc WHERE proname = 'outbox_notify'") == 0
        )
        await conn.execute(outbox_ddl(SCHEMA))  # and it can be created again
