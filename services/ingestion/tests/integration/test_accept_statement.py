"""The accept statement (conversions + outbox messages + receipts of several webhooks in one
round trip) against real PostgreSQL: what a new and a repeated conversion write, group commit of
concurrent webhooks, repeats inside one group, a refused row, and the race in which a concurrent
accept of the same order commits while the statement waits on the unique index.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from trackai.common.v1 import events_pb2 as common_pb
from trackai.ingestion.v1 import events_pb2 as ev
from trackai_ingestion.adapters.group_commit import columns
from trackai_ingestion.adapters.repository import (
    _ACCEPT,
    ConversionStore,
    accept_row,
)
from trackai_ingestion.domain.gateways import ADAPTERS
from trackai_ingestion.domain.model import Accept, Conversion
from trackai_ingestion.service_layer.ports import Receipt

from ..conftest import fixture_bytes

pytestmark = pytest.mark.integration


def _conversion() -> Conversion:
    result = ADAPTERS["kiwify"].interpret(json.loads(fixture_bytes("kiwify-3.json")))
    assert isinstance(result, Accept)
    return result.conversion


def _receipt(conversion: Conversion) -> Receipt:
    return Receipt(
        received_at=datetime(2026, 6, 8, 15, 0, tzinfo=UTC),
        gateway="kiwify",
        outcome="accepted",
        http_status=200,
        body_sha256="0" * 64,
        body_redacted={"order_id": conversion.order_id},
        headers={"content-type": "application/json"},
        content_type="application/json",
        order_id=conversion.order_id,
    )


async def _rows(conn: asyncpg.Connection) -> dict[str, list[dict[str, Any]]]:
    return {
        "events": [dict(r) for r in await conn.fetch("SELECT id FROM ingestion.events")],
        "outbox": [
            dict(r)
            for r in await conn.fetch(
                "SELECT message_id, message_type, body FROM ingestion.outbox WHERE exchange = ''"
            )
        ],
        "statuses": [
            dict(r)
            for r in await conn.fetch(
                "SELECT message_id, routing_key, message_type, body FROM ingestion.outbox "
                "WHERE exchange = 'trackai.status'"
            )
        ],
        "receipts": [
            dict(r)
            for r in await conn.fetch(
                "SELECT outcome, conversion_id, http_status, order_id, body_redacted::text, "
                "headers::text FROM ingestion.webhook_receipts ORDER BY received_at, outcome"
            )
        ],
    }


async def test_new_then_repeated_conversion(database_url: str, pg_pool: Any) -> None:
    store = ConversionStore(await pg_pool(database_url, schema="ingestion"))
    conversion, tenant = _conversion(), uuid.uuid4()
    first = await store.accept(tenant, conversion, _receipt(conversion))
    again = await store.accept(tenant, conversion, _receipt(conversion))
    assert not first.duplicate and again.duplicate
    assert again.conversion_id == first.conversion_id
    conn = await asyncpg.connect(database_url)
    try:
        rows = await _rows(conn)
    finally:
        await conn.close()
    assert rows["events"] == [{"id": first.conversion_id}]
    [message] = rows["outbox"]
    assert message["message_id"] == str(first.conversion_id)
    assert message["message_type"] == "trackai.ingestion.v1.IngestEvent"
    event = ev.IngestEvent.FromString(message["body"])
    assert event.message_id == event.conversion.conversion_id == str(first.conversion_id)
    # Open console pages learn of it from its "received" status, enqueued once with it.
    [status] = rows["statuses"]
    assert status["routing_key"] == f"conversion.{tenant}"
    assert status["message_type"] == "trackai.common.v1.StatusUpdate"
    update = common_pb.StatusUpdate.FromString(status["body"])
    assert (update.tenant_id, update.entity, update.entity_id, update.status) == (
        str(tenant),
        common_pb.STATUS_ENTITY_CONVERSION,
        str(first.conversion_id),
        "received",
    )
    assert conversion.order_id not in update.detail
    assert [(r["outcome"], r["conversion_id"]) for r in rows["receipts"]] == [
        ("accepted", first.conversion_id),
        ("duplicate", first.conversion_id),
    ]
    assert rows["receipts"][0]["order_id"] == conversion.order_id
    assert json.loads(rows["receipts"][0]["body_redacted"]) == {"order_id": conversion.order_id}


async def test_concurrent_accept_committing_meanwhile_is_a_duplicate(
    database_url: str, pg_pool: Any
) -> None:
    """The statement's snapshot cannot see a conversion committed while it waited on the unique
    index: it must neither lose the receipt nor enqueue a second message."""
    store = ConversionStore(await pg_pool(database_url, schema="ingestion"))
    conversion, tenant = _conversion(), uuid.uuid4()
    blocker = await asyncpg.connect(database_url)
    try:
        racing_id = uuid.uuid4()
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute(
            "INSERT INTO ingestion.events (id, tenant_id, kind, gateway, order_id, status, "
            "event_time, received_at) VALUES ($1, $2, 'conversion', $3, $4, $5, now(), now())",
            racing_id,
            tenant,
            conversion.gateway,
            conversion.order_id,
            conversion.status.value,
        )
        accepting = asyncio.create_task(store.accept(tenant, conversion, _receipt(conversion)))
        await _wait_until_blocked(blocker, database_url)
        assert not accepting.done()
        await transaction.commit()
        accepted = await asyncio.wait_for(accepting, 10)
        rows = await _rows(blocker)
    finally:
        await blocker.close()
    assert accepted.duplicate and accepted.conversion_id == racing_id
    assert rows["outbox"] == rows["statuses"] == []
    assert [(r["outcome"], r["conversion_id"]) for r in rows["receipts"]] == [
        ("duplicate", racing_id)
    ]


async def test_concurrent_webhooks_are_committed_together(database_url: str, pg_pool: Any) -> None:
    """Ten new orders and six repeats of one more arriving together: one transaction writes the
    new ones, the repeats are absorbed by the next statement, every caller gets its answer."""
    store = ConversionStore(await pg_pool(database_url, schema="ingestion"))
    conversion, tenant = _conversion(), uuid.uuid4()
    orders = [dataclasses.replace(conversion, order_id=f"order-{n}") for n in range(10)]
    answers = await asyncio.gather(
        *(store.accept(tenant, c, _receipt(c)) for c in [*orders, *[conversion] * 6])
    )
    conn = await asyncpg.connect(database_url)
    try:
        transactions = await conn.fetchval(
            "SELECT count(DISTINCT xmin::text) FROM ingestion.events WHERE order_id LIKE 'order-%'"
        )
        rows = await _rows(conn)
    finally:
        await conn.close()
    assert transactions == 1
    assert not any(a.duplicate for a in answers[:10])
    repeats = answers[10:]
    assert len({a.conversion_id for a in repeats}) == 1
    assert sorted(a.duplicate for a in repeats) == [False] + [True] * 5
    assert len(rows["events"]) == len(rows["outbox"]) == len(rows["statuses"]) == 11
    assert sorted(r["outcome"] for r in rows["receipts"]) == ["accepted"] * 11 + ["duplicate"] * 5


async def test_a_refused_row_does_not_fail_the_others(database_url: str, pg_pool: Any) -> None:
    store = ConversionStore(await pg_pool(database_url, schema="ingestion"))
    conversion, tenant = _conversion(), uuid.uuid4()
    good = [dataclasses.replace(conversion, order_id=f"good-{n}") for n in range(3)]
    bad = dataclasses.replace(
        conversion,
        order_id="bad",
        user_data=dataclasses.replace(conversion.user_data, em="NOT-A-SHA-256"),
    )
    answers = await asyncio.gather(
        *(store.accept(tenant, c, _receipt(c)) for c in [*good, bad]), return_exceptions=True
    )
    assert all(not isinstance(a, BaseException) and not a.duplicate for a in answers[:3])
    assert isinstance(answers[3], asyncpg.CheckViolationError)
    conn = await asyncpg.connect(database_url)
    try:
        rows = await _rows(conn)
    finally:
        await conn.close()
    assert len(rows["events"]) == len(rows["outbox"]) == len(rows["receipts"]) == 3
    assert len(rows["statuses"]) == 3


async def _wait_until_blocked(conn: asyncpg.Connection, database_url: str) -> None:
    database = database_url.rsplit("/", 1)[-1].split("?", 1)[0]
    for _ in range(200):
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
            database,
        )
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the accept statement never waited on the racing insert")


async def test_known_orders_are_found_through_the_conflict_arbiter_only(
    database_url: str, pg_pool: Any
) -> None:
    """The statement must not look existing conversions up with a plan of its own: with stale or
    missing statistics PostgreSQL once chose the tenant's time index and filtered every
    conversion of the tenant for each webhook (3 s per statement at 200k conversions). Only the
    insert's conflict arbiter (the unique index) may read ``ingestion.events``, whatever the
    statistics say, and repeats are still answered with the existing conversion."""
    pool = await pg_pool(database_url, schema="ingestion")
    store = ConversionStore(pool)
    conversion, tenant = _conversion(), uuid.uuid4()
    known = [dataclasses.replace(conversion, order_id=f"known-{n}") for n in range(4)]
    first = await asyncio.gather(*(store.accept(tenant, c, _receipt(c)) for c in known))
    batch = [*known, *(dataclasses.replace(conversion, order_id=f"new-{n}") for n in range(4))]
    rows = [accept_row(tenant, c, _receipt(c)) for c in batch]
    async with pool.acquire() as conn:
        for stats in ("never analysed", "analysed"):
            if stats == "analysed":
                await conn.execute("ANALYZE ingestion.events")
            transaction = conn.transaction()
            await transaction.start()
            try:  # EXPLAIN ANALYZE runs the statement: rolled back, it writes nothing
                plan = await conn.fetchval(
                    f"EXPLAIN (ANALYZE, FORMAT JSON) {_ACCEPT}", *columns(rows)
                )
            finally:
                await transaction.rollback()
            assert _scans_of(plan[0]["Plan"], "events") == [], stats  # json decoded by the pool
    again = await asyncio.gather(*(store.accept(tenant, c, _receipt(c)) for c in known))
    assert [a.conversion_id for a in again] == [a.conversion_id for a in first]
    assert all(a.duplicate for a in again)


def _scans_of(node: dict[str, Any], relation: str) -> list[str]:
    """Plan nodes other than the insert itself that read ``relation``."""
    found = (
        [node["Node Type"]]
        if node.get("Relation Name") == relation and node["Node Type"] != "ModifyTable"
        else []
    )
    for child in node.get("Plans", []):
        found += _scans_of(child, relation)
    return found
