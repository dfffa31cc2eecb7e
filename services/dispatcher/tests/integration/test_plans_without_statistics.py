"""A batch's statements reach their rows through the one index that holds their key, whatever the
statistics say.

Every per-batch statement looks rows up by a key that a single index holds (``event_id``: the
primary key of ``dispatches``; ``(tenant_id, pixel_id)``: the breaker's), and the monitor's two by
the partial index that matches their predicate, so no statistics can steer them to the tenant's
other rows. This runs a batch's statements through the repository, as custom and as generic plans,
on tables never analysed and on tables analysed before the tenant arrived, while auto_explain
reports every executed plan.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from trackai_dispatcher.adapters import delivery_store as repo
from trackai_dispatcher.domain.breaker import Breaker, BreakerState
from trackai_dispatcher.domain.model import AttemptOutcome, Destination, State
from trackai_dispatcher.service_layer import ports
from trackai_kit.postgres import asyncpg_dsn
from trackai_testing.explain import explained_pool, node_label, plan_nodes, read_problems

pytestmark = pytest.mark.integration

TABLES = ("dispatches", "dispatch_attempts", "dispatch_attempt_events", "breaker_states")
PIXEL = "1234567890"
#: The new tenant's events (a scan filtering them stands out) and those of four known tenants.
NEW_EVENTS = 5000
KNOWN_EVENTS = 500

# Events of the last three days in batches of two (one attempt each), mostly sent; breakers of a
# thousand destinations.
EVENTS_SQL = """
INSERT INTO dispatcher.dispatches (event_id, tenant_id, pixel_id, event_name, event_time, state,
    attempts, payload, last_batch_id, reason, sent_at, created_at, updated_at)
SELECT encode(sha256(convert_to($1::text || g, 'UTF8')), 'hex'), $1::uuid, $2, 'Purchase',
       created, state, 1, '{"event_name": "Purchase"}', md5($1::text || (g / 2))::uuid,
       CASE WHEN state = 'dead' THEN 'meta_rejected' END,
       CASE WHEN state = 'sent' THEN created END, created, created
FROM generate_series(1, $3::int) AS g,
     LATERAL (SELECT now() - interval '72 hours' * g / $3::int AS created,
                     CASE WHEN g % 20 = 0 THEN 'retrying' WHEN g % 33 = 0 THEN 'dead'
                          ELSE 'sent' END AS state) AS s
"""
ATTEMPTS_SQL = """
WITH a AS (
    INSERT INTO dispatcher.dispatch_attempts (batch_id, tenant_id, pixel_id, attempt, event_count,
        started_at, finished_at, latency_ms, outcome, http_status)
    SELECT last_batch_id, $1::uuid, $2, 1, count(*), min(created_at), min(created_at), 300,
           'sent', 200
    FROM dispatcher.dispatches WHERE tenant_id = $1::uuid GROUP BY last_batch_id
    RETURNING id, batch_id
)
INSERT INTO dispatcher.dispatch_attempt_events (event_id, attempt_id)
SELECT d.event_id, a.id FROM dispatcher.dispatches d JOIN a ON a.batch_id = d.last_batch_id
"""
BREAKERS_SQL = """
INSERT INTO dispatcher.breaker_states (tenant_id, pixel_id)
SELECT gen_random_uuid(), (100000 + g)::text FROM generate_series(1, 1000) AS g
"""


async def load(conn: asyncpg.Connection, tenant: str, events: int) -> None:
    await conn.execute(EVENTS_SQL, tenant, PIXEL, events)
    await conn.execute(ATTEMPTS_SQL, tenant, PIXEL)


#: The index each statement's key lives in: nothing else may read these tables.
INDEXES = {
    "dispatches_pkey",
    "breaker_states_pkey",
    "dispatches_undelivered_event_time_idx",
    "dispatch_attempts_failures_time_idx",
}


def problems(explained: dict[str, Any]) -> list[str]:
    query = " ".join(explained["Query Text"].split())
    found = []
    for node in plan_nodes(explained["Plan"]):
        found += read_problems(node, TABLES)
        keyed_by = node.get("Index Name")
        if node.get("Relation Name") in TABLES and keyed_by is not None and keyed_by not in INDEXES:
            found.append(f"{node_label(node)} is not the index of the statement's key")
    return [f"{problem}\n    in: {query[:160]}" for problem in found]


def changes(event_ids: list[str]) -> list[ports.Change]:
    return [ports.Change(e, State.SENT, posts=1, http_status=200) for e in event_ids]


def new_dispatch(event_id: str, tenant: str) -> ports.NewDispatch:
    return ports.NewDispatch(
        event_id=event_id,
        tenant_id=tenant,
        pixel_id=PIXEL,
        funnel_id="",
        conversion_id="",
        event_name="Purchase",
        event_time=int(datetime.now(UTC).timestamp()),
        payload={"event_name": "Purchase"},
        match_stage="MATCH_STAGE_SEMI_DETERMINISTIC",
        match_score=1.0,
        emq=7.5,
    )


# The listener collecting plans is added on every acquire; asyncpg warns when it is still there on
# release (it drops it itself).
@pytest.mark.filterwarnings("ignore:.*active log listener:asyncpg.InterfaceWarning")
@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize("statistics", ["never analysed", "analysed before the tenant arrived"])
async def test_batch_statements_use_their_keys_index(
    database_url: str, statistics: str, plan_cache_mode: str
) -> None:
    tenant = str(uuid.uuid4())
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for table in TABLES:
            await conn.execute(f"ALTER TABLE dispatcher.{table} SET (autovacuum_enabled = false)")
        await conn.execute(BREAKERS_SQL)
        for _ in range(4):
            await load(conn, str(uuid.uuid4()), KNOWN_EVENTS)
        if statistics == "analysed before the tenant arrived":
            await conn.execute("ANALYZE " + ", ".join(f"dispatcher.{t}" for t in TABLES))
        await load(conn, tenant, NEW_EVENTS)
        await conn.execute(
            "INSERT INTO dispatcher.breaker_states (tenant_id, pixel_id) VALUES ($1, $2)",
            tenant,
            PIXEL,
        )
        known = [
            r["event_id"]
            for r in await conn.fetch(
                "SELECT event_id FROM dispatcher.dispatches WHERE tenant_id = $1 "
                "AND state = 'retrying' ORDER BY event_id LIMIT 5",
                tenant,
            )
        ]
    finally:
        await conn.close()
    # A batch of 15 new events and 5 redelivered ones, as Dispatcher runs it: store, lock and claim;
    # ask the breaker; then outcomes, the attempt and the breaker; and the monitor's round. (With
    # hundreds of ids, a custom plan on a table this small is costed cheaper as one sequential
    # read: a matter of the table's size, not of its statistics.)
    batch = sorted([uuid.uuid4().hex * 2 for _ in range(15)] + known)
    destination = Destination(tenant, PIXEL)
    now = datetime.now(UTC)
    async with explained_pool(
        database_url, search_path="dispatcher,public", plan_cache_mode=plan_cache_mode
    ) as (pool, plans):
        async with pool.acquire() as c, c.transaction():
            await repo.insert_new(c, [new_dispatch(e, tenant) for e in batch])
            current = await repo.lock_current(c, batch)
            await repo.claim(c, batch, uuid.uuid4(), 30.0)
        async with pool.acquire() as c:
            assert (await repo.read_breaker(c, destination)).state is BreakerState.CLOSED
        async with pool.acquire() as c, c.transaction():
            await repo.apply_changes(c, changes(batch))
            await repo.record_attempt(
                c,
                ports.AttemptRecord(
                    batch_id=uuid.uuid4(),
                    destination=destination,
                    attempt=1,
                    event_ids=batch,
                    started_at=now,
                    finished_at=now,
                    latency_ms=300.0,
                    outcome=AttemptOutcome.RETRYABLE,
                    http_status=503,
                ),
            )
            breaker = await repo.lock_breaker(c, destination)
            failing = Breaker(
                BreakerState.CLOSED, consecutive_failures=breaker.consecutive_failures + 1
            )
            await repo.save_breaker(c, destination, failing)
        async with pool.acquire() as c:
            await repo.expire_overdue(c, now - timedelta(days=7), "too old")
            assert await repo.failing_destinations(c, 60.0) == 1
        await asyncio.sleep(0)  # notices reach the listener through the event loop
    assert len(current) == len(batch)
    texts = " ".join(plan["Query Text"] for plan in plans)
    for table in TABLES:
        assert table in texts, f"no plan reported for a statement on {table}"
    found = [problem for plan in plans for problem in problems(plan)]
    assert found == [], "\n".join(found)
