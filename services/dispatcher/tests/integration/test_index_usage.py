"""The dashboard's, the DLQ's and the expiry sweep's queries on the dispatcher tables use indexes.

300,000 dispatches over 200 tenants (skewed sizes, 7 days; mostly sent, some retrying, parked,
dead or expired) and their batch attempts. Each query is checked with
``EXPLAIN (ANALYZE, FORMAT JSON)`` as a custom plan and as a cached statement's generic plan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
import pytest_asyncio

from trackai_dispatcher.adapters.query_store import list_states_query
from trackai_dispatcher.service_layer.ports import StateFilter
from trackai_testing.explain import LoadedTenants, explain_prepared, loaded_clone

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DISPATCHES = 300_000
TENANTS = 200
BATCH = 50

LOAD_SQL = f"""
INSERT INTO dispatcher.dispatches (
    event_id, tenant_id, pixel_id, event_name, event_time, state, attempts, payload,
    last_batch_id, reason, created_at, updated_at, sent_at)
SELECT
    encode(sha256(convert_to('event' || g, 'UTF8')), 'hex'),
    md5('tenant' || t)::uuid,
    (100000000000000 + t)::text,
    'Purchase',
    created - interval '2 minutes',
    state,
    CASE WHEN state = 'sent' THEN 1 ELSE 1 + (r_state * 5)::int END,
    jsonb_build_object('event_name', 'Purchase', 'action_source', 'website'),
    md5('batch' || (g / {BATCH}))::uuid,
    CASE WHEN state IN ('dead', 'expired') THEN
        (ARRAY['meta_100_invalid_parameter', 'meta_190_token', 'event_too_old'])[1 + g % 3] END,
    created,
    created + interval '3 seconds',
    CASE WHEN state = 'sent' THEN created + interval '3 seconds' END
FROM (
    SELECT g, t, created, r_state,
           CASE WHEN r_state < 0.94 THEN 'sent'
                WHEN r_state < 0.96 THEN 'retrying'
                WHEN r_state < 0.975 THEN 'parked'
                WHEN r_state < 0.99 THEN 'dead'
                WHEN r_state < 0.995 THEN 'expired'
                ELSE 'pending' END AS state
    FROM (
        SELECT g, floor({TENANTS} * power(random(), 2))::int AS t,
               now() - random() * interval '7 days' AS created, random() AS r_state
        FROM generate_series(1, {DISPATCHES}) AS g
    ) AS r
) AS s
"""

ATTEMPTS_SQL = """
INSERT INTO dispatcher.dispatch_attempts (
    batch_id, tenant_id, pixel_id, attempt, event_count, started_at, finished_at, latency_ms,
    outcome, http_status, fbtrace_id, events_received)
SELECT last_batch_id, min(tenant_id::text)::uuid, min(pixel_id), 1, count(*),
       min(created_at), min(created_at) + interval '300 milliseconds', 300, 'sent', 200,
       'trace', count(*)
FROM dispatcher.dispatches
GROUP BY last_batch_id;
INSERT INTO dispatcher.dispatch_attempt_events (event_id, attempt_id)
SELECT d.event_id, a.id
FROM dispatcher.dispatches d JOIN dispatcher.dispatch_attempts a ON a.batch_id = d.last_batch_id;
"""

SAMPLE_SQL = """
SELECT tenant_id, event_id, 'dead'::text AS dead, 'sent'::text AS sent,
       pixel_id, now() - interval '6 days' AS horizon,
       ARRAY['dead'] AS dead_only, ARRAY['sent'] AS sent_only,
       ARRAY['retrying', 'parked'] AS failing
FROM dispatcher.dispatches WHERE tenant_id = $1 ORDER BY created_at LIMIT 1
"""


@dataclass(frozen=True)
class Probe:
    name: str
    sql: str
    params: tuple[str, ...]
    #: Any of these serves the query (the planner may prefer a narrower partial index).
    indexes: tuple[str, ...]


PARAM_TYPES = {
    "tenant_id": "uuid",
    "event_id": "bpchar",
    "dead": "text",
    "sent": "text",
    "pixel_id": "text",
    "horizon": "timestamptz",
    "dead_only": "text[]",
    "sent_only": "text[]",
    "failing": "text[]",
}


def _events_page(*states: str) -> str:
    """ListEventStates' statement for a first page of these states (no other filter)."""
    return list_states_query(StateFilter("tenant", states, limit=26))[0]


PROBES = [
    Probe(
        "dashboard_sent",
        """SELECT event_id, event_name, state, updated_at FROM dispatcher.dispatches
           WHERE tenant_id = $1 AND state = $2 ORDER BY updated_at DESC LIMIT 50""",
        ("tenant_id", "sent"),
        ("dispatches_tenant_state_updated_idx",),
    ),
    Probe(
        "dlq_list",
        """SELECT event_id, reason, updated_at FROM dispatcher.dispatches
           WHERE tenant_id = $1 AND state = $2 ORDER BY updated_at DESC LIMIT 50""",
        ("tenant_id", "dead"),
        ("dispatches_tenant_state_updated_idx", "dispatches_dead_reason_idx"),
    ),
    Probe(
        "events_page_dead",
        _events_page("dead"),
        ("tenant_id", "dead_only"),
        # A small tenant's few dead events: read them all through the partial index and sort.
        ("dispatches_tenant_state_event_time_idx", "dispatches_dead_reason_idx"),
    ),
    Probe(
        "events_page_sent",
        _events_page("sent"),
        ("tenant_id", "sent_only"),
        ("dispatches_tenant_state_event_time_idx",),
    ),
    Probe(
        "events_page_failing",
        _events_page("retrying", "parked"),
        ("tenant_id", "failing"),
        ("dispatches_tenant_state_event_time_idx",),
    ),
    Probe(
        "expiry_sweep",
        """SELECT event_id FROM dispatcher.dispatches
           WHERE state IN ('pending', 'retrying', 'parked') AND event_time < $1""",
        ("horizon",),
        ("dispatches_undelivered_event_time_idx",),
    ),
    Probe(
        "breaker_release_parked",
        """SELECT event_id FROM dispatcher.dispatches
           WHERE tenant_id = $1 AND pixel_id = $2 AND state = 'parked' ORDER BY created_at""",
        ("tenant_id", "pixel_id"),
        ("dispatches_parked_destination_idx",),
    ),
    Probe(
        "dlq_list_all_tenants",
        """SELECT event_id, reason, updated_at FROM dispatcher.dispatches
           WHERE state = 'dead' AND ($1::timestamptz IS NULL OR updated_at < $1)
           ORDER BY updated_at DESC, event_id DESC LIMIT 50""",
        ("horizon",),
        ("dispatches_dead_updated_idx",),
    ),
    Probe(
        "failing_destinations",
        """SELECT count(DISTINCT (tenant_id, pixel_id)) FROM dispatcher.dispatch_attempts
           WHERE outcome <> 'sent' AND started_at > $1 AND outcome IN ('retryable', 'timeout')""",
        ("horizon",),
        ("dispatch_attempts_failures_time_idx",),
    ),
    Probe(
        "attempts_of_one_event",
        """SELECT a.batch_id, a.attempt, a.outcome, a.http_status, a.meta_code
           FROM dispatcher.dispatch_attempt_events e
           JOIN dispatcher.dispatch_attempts a ON a.id = e.attempt_id
           WHERE e.event_id = $1 ORDER BY a.started_at""",
        ("event_id",),
        ("dispatch_attempt_events_pkey",),
    ),
]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def loaded(postgres_url: str, migrated_template: str) -> AsyncIterator[LoadedTenants]:
    async with loaded_clone(
        postgres_url,
        migrated_template,
        "dispatcher",
        [LOAD_SQL, ATTEMPTS_SQL],
        count_table="dispatcher.dispatches",
        analyze="ANALYZE dispatcher.dispatches, dispatcher.dispatch_attempts, "
        "dispatcher.dispatch_attempt_events",
    ) as loaded:
        assert sum(loaded.counts) == DISPATCHES
        conn = await asyncpg.connect(loaded.url)
        try:
            attempts = await conn.fetchval("SELECT count(*) FROM dispatcher.dispatch_attempts")
        finally:
            await conn.close()
        print(
            f"\ndispatcher load: {DISPATCHES} dispatches over {len(loaded.counts)} tenants "
            f"(largest {loaded.counts[0]}), {attempts} attempts, in {loaded.load_s:.1f} s"
        )
        yield loaded


@pytest.mark.parametrize("generic", [False, True], ids=["custom_plan", "generic_plan"])
@pytest.mark.parametrize("tenant", ["largest", "median"])
@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
async def test_dispatcher_query_uses_its_index(
    loaded: LoadedTenants, probe: Probe, tenant: str, generic: bool
) -> None:
    conn = await asyncpg.connect(loaded.url)
    try:
        sample = await conn.fetchrow(SAMPLE_SQL, loaded.tenants[tenant])
    finally:
        await conn.close()
    assert sample is not None
    result = await explain_prepared(
        # The service's statements name their tables unqualified (its search_path).
        f"{loaded.url}?search_path=dispatcher",
        probe.sql,
        [PARAM_TYPES[key] for key in probe.params],
        [sample[key] for key in probe.params],
        generic=generic,
    )
    print(f"\n{probe.name} [{tenant}, {'generic' if generic else 'custom'}]: {result.describe()}")
    assert result.seq_scans == [], f"{probe.name} scans sequentially"
    assert result.indexes & set(probe.indexes), f"{probe.name} used {result.indexes or 'no index'}"
