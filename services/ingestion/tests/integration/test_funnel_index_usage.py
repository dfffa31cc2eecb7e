"""ListConversions filtered by funnel reads one page by index, in custom and generic plans.

300,000 conversions over 200 tenants (skewed sizes, 30 days), two funnels per tenant and a third
of the conversions without one. The statement has the repository's shape (``list()`` with a
period and a funnel, the limit a parameter) and is checked with ``EXPLAIN (ANALYZE, FORMAT
JSON)`` as a custom plan and as the generic plan a cached asyncpg statement switches to after
five executions: without its own index the generic plan rated the funnel at one row and sorted
every conversion of the period (0.2-0.3 s for a 150k-conversion tenant).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from trackai_testing.explain import LoadedTenants, explain_prepared, loaded_clone

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONVERSIONS = 300_000
TENANTS = 200

LOAD_SQL = f"""
INSERT INTO ingestion.events (
    tenant_id, kind, gateway, order_id, status, event_time, amount, currency, funnel_id)
SELECT md5('tenant' || t)::uuid, 'conversion', 'kiwify', 'ORD-' || g, 'approved', at, 97, 'BRL',
       CASE WHEN g % 3 = 0 THEN NULL ELSE md5('funnel' || t || '-' || g % 3)::uuid END
FROM (
    SELECT g, floor({TENANTS} * power(random(), 2))::int AS t,
           now() - random() * interval '30 days' AS at
    FROM generate_series(1, {CONVERSIONS}) AS g
) AS s;
ANALYZE ingestion.events;
"""

# The shape ``PostgresConversionStore.list`` builds for a period and a funnel.
FUNNEL_PAGE_SQL = """
SELECT id, gateway, order_id, status, amount, event_time FROM ingestion.events
WHERE tenant_id = $1 AND kind = 'conversion' AND event_time >= $2 AND funnel_id = $3
ORDER BY event_time DESC, id DESC LIMIT $4
"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def loaded(postgres_url: str, migrated_template: str) -> AsyncIterator[LoadedTenants]:
    async with loaded_clone(
        postgres_url,
        migrated_template,
        "ingestion_funnel",
        [LOAD_SQL],
        count_table="ingestion.events",
    ) as loaded:
        assert sum(loaded.counts) == CONVERSIONS
        yield loaded


@pytest.mark.parametrize("generic", [False, True], ids=["custom_plan", "generic_plan"])
@pytest.mark.parametrize("tenant", ["largest", "median"])
async def test_funnel_page_is_read_by_its_index(
    loaded: LoadedTenants, tenant: str, generic: bool
) -> None:
    conn = await asyncpg.connect(loaded.url)
    try:
        sample = await conn.fetchrow(
            "SELECT funnel_id, now() - interval '7 days' AS since FROM ingestion.events "
            "WHERE tenant_id = $1 AND funnel_id IS NOT NULL LIMIT 1",
            loaded.tenants[tenant],
        )
    finally:
        await conn.close()
    assert sample is not None
    result = await explain_prepared(
        loaded.url,
        FUNNEL_PAGE_SQL,
        ["uuid", "timestamptz", "uuid", "int4"],
        [loaded.tenants[tenant], sample["since"], sample["funnel_id"], 26],
        generic=generic,
    )
    print(f"\nfunnel page [{tenant}, {'generic' if generic else 'custom'}]: {result.describe()}")
    assert result.seq_scans == [], f"scans {result.seq_scans}"
    assert result.indexes == {"events_tenant_funnel_time_idx"}, f"used {result.indexes}"
