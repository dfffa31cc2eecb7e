"""The dashboard's and the webhook dedupe's queries on ``ingestion.events`` use their indexes.

400,000 events over 200 tenants (skewed sizes, 30 days): three browser hits for every
conversion, conversions spread over realistic statuses. Each query is checked with
``EXPLAIN (ANALYZE, FORMAT JSON)`` as a custom plan and as a cached statement's generic plan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
import pytest_asyncio

from trackai_testing.explain import LoadedTenants, explain_prepared, loaded_clone

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 400_000
TENANTS = 200

LOAD_SQL = f"""
INSERT INTO ingestion.events (
    tenant_id, kind, gateway, order_id, status, event_name, event_id, event_time, amount,
    currency, email_hash, session_id, client_ip, user_agent, utm)
SELECT
    md5('tenant' || t)::uuid,
    kind,
    CASE WHEN kind = 'conversion' THEN (ARRAY['kiwify', 'perfectpay', 'hotmart', 'eduzz',
                                              'cakto'])[1 + floor(r_gw * 5)::int] END,
    CASE WHEN kind = 'conversion' THEN 'ORD-' || g END,
    CASE WHEN kind <> 'conversion' THEN NULL
         WHEN r_status < 0.60 THEN 'approved'
         WHEN r_status < 0.85 THEN 'pending_payment'
         WHEN r_status < 0.93 THEN 'refused'
         WHEN r_status < 0.97 THEN 'refunded'
         WHEN r_status < 0.98 THEN 'chargeback'
         ELSE 'canceled' END,
    CASE WHEN kind = 'conversion' THEN 'Purchase' END,
    CASE WHEN kind <> 'conversion' THEN md5('hit' || g) END,
    now() - random() * interval '30 days',
    CASE WHEN kind = 'conversion' THEN round((47 + r_gw * 950)::numeric, 2) END,
    CASE WHEN kind = 'conversion' THEN 'BRL' END,
    CASE WHEN kind IN ('conversion', 'lead')
         THEN encode(sha256(convert_to('buyer' || g || '@example.com', 'UTF8')), 'hex') END,
    'sess-' || (g / 3),
    ('177.' || (g % 200) || '.' || (g % 250) || '.' || (g % 253 + 1))::inet,
    'Mozilla/5.0 (Linux; Android 14) Chrome/126.0 Mobile',
    jsonb_build_object('utm_source', 'facebook')
FROM (
    SELECT g,
           floor({TENANTS} * power(random(), 2))::int AS t,
           CASE WHEN r_kind < 0.25 THEN 'conversion'
                WHEN r_kind < 0.85 THEN 'page_view'
                WHEN r_kind < 0.95 THEN 'lead'
                ELSE 'checkout_start' END AS kind,
           random() AS r_status, random() AS r_gw
    FROM (SELECT g, random() AS r_kind FROM generate_series(1, {EVENTS}) AS g) AS k
) AS s
"""

SAMPLE_SQL = """
SELECT tenant_id, gateway, order_id, status, event_time + interval '1 minute' AS until
FROM ingestion.events
WHERE tenant_id = $1 AND kind = 'conversion' AND status = 'approved'
ORDER BY event_time DESC LIMIT 1
"""


@dataclass(frozen=True)
class Probe:
    name: str
    sql: str
    params: tuple[str, ...]
    index: str


PARAM_TYPES = {
    "tenant_id": "uuid",
    "gateway": "text",
    "order_id": "text",
    "status": "text",
    "until": "timestamptz",
}

PROBES = [
    Probe(
        "dashboard_by_status",
        """SELECT id, gateway, order_id, amount, currency, event_time FROM ingestion.events
           WHERE tenant_id = $1 AND status = $2
             AND event_time >= $3 - interval '7 days' AND event_time < $3
           ORDER BY event_time DESC LIMIT 50""",
        ("tenant_id", "status", "until"),
        "events_tenant_status_time_idx",
    ),
    Probe(
        "dashboard_all_conversions",
        """SELECT id, gateway, order_id, status, amount, event_time FROM ingestion.events
           WHERE tenant_id = $1 AND kind = 'conversion' AND event_time < $2
           ORDER BY event_time DESC LIMIT 50""",
        ("tenant_id", "until"),
        "events_tenant_conversion_time_idx",
    ),
    Probe(
        "dashboard_totals_last_day",
        """SELECT status, count(*), sum(amount) FROM ingestion.events
           WHERE tenant_id = $1 AND kind = 'conversion'
             AND event_time >= $2 - interval '1 day' AND event_time < $2
           GROUP BY status""",
        ("tenant_id", "until"),
        "events_tenant_conversion_time_idx",
    ),
    Probe(
        "webhook_dedupe_lookup",
        """SELECT id FROM ingestion.events
           WHERE tenant_id = $1 AND gateway = $2 AND order_id = $3 AND status = $4
             AND kind = 'conversion'""",
        ("tenant_id", "gateway", "order_id", "status"),
        "events_conversion_dedupe_uq",
    ),
]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def loaded(postgres_url: str, migrated_template: str) -> AsyncIterator[LoadedTenants]:
    async with loaded_clone(
        postgres_url,
        migrated_template,
        "ingestion",
        [LOAD_SQL],
        count_table="ingestion.events",
        analyze="ANALYZE ingestion.events",
    ) as loaded:
        assert sum(loaded.counts) == EVENTS
        print(
            f"\ningestion load: {EVENTS} events over {len(loaded.counts)} tenants (largest "
            f"{loaded.counts[0]}) in {loaded.load_s:.1f} s"
        )
        yield loaded


@pytest.mark.parametrize("generic", [False, True], ids=["custom_plan", "generic_plan"])
@pytest.mark.parametrize("tenant", ["largest", "median"])
@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
async def test_dashboard_query_uses_its_index(
    loaded: LoadedTenants, probe: Probe, tenant: str, generic: bool
) -> None:
    conn = await asyncpg.connect(loaded.url)
    try:
        sample = await conn.fetchrow(SAMPLE_SQL, loaded.tenants[tenant])
    finally:
        await conn.close()
    assert sample is not None
    result = await explain_prepared(
        loaded.url,
        probe.sql,
        [PARAM_TYPES[key] for key in probe.params],
        [sample[key] for key in probe.params],
        generic=generic,
    )
    print(f"\n{probe.name} [{tenant}, {'generic' if generic else 'custom'}]: {result.describe()}")
    assert result.seq_scans == [], f"{probe.name} scans ingestion.events sequentially"
    assert probe.index in result.indexes, f"{probe.name} used {result.indexes or 'no index'}"
