"""GetParameterCoverage (the console's EMQ page) reads a tenant's week by index.

300,000 dispatches over 200 tenants with skewed sizes, spread over 30 days, so the page's 7-day
window is about a quarter of a tenant's events. The statement is checked with
``EXPLAIN (ANALYZE, FORMAT JSON)`` as a custom and as a generic plan: it must read the week
through ``dispatches_tenant_event_time_idx``, not scan the table or every event of the tenant.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from trackai_dispatcher.adapters.query_store import PARAMETER_COVERAGE_SQL
from trackai_testing.explain import LoadedTenants, explain_prepared, loaded_clone

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DISPATCHES = 300_000
TENANTS = 200

LOAD_SQL = f"""
INSERT INTO dispatcher.dispatches (
    event_id, tenant_id, pixel_id, event_name, event_time, state, attempts, payload, created_at,
    updated_at, sent_at)
SELECT encode(sha256(convert_to('event' || g, 'UTF8')), 'hex'), md5('tenant' || t)::uuid,
       (100000000000000 + t)::text, 'Purchase', at, 'sent', 1,
       jsonb_build_object('event_name', 'Purchase', 'user_data', jsonb_strip_nulls(
           jsonb_build_object('em', jsonb_build_array(md5('em' || g)),
                              'ph', CASE WHEN g % 5 < 4 THEN jsonb_build_array(md5('ph' || g)) END,
                              'fbp', CASE WHEN g % 2 = 0 THEN 'fb.1.1700000000000.' || g END))),
       at, at, at
FROM (
    SELECT g, floor({TENANTS} * power(random(), 2))::int AS t,
           now() - random() * interval '30 days' AS at
    FROM generate_series(1, {DISPATCHES}) AS g
) AS s;
ANALYZE dispatcher.dispatches;
"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def loaded(postgres_url: str, migrated_template: str) -> AsyncIterator[LoadedTenants]:
    async with loaded_clone(
        postgres_url,
        migrated_template,
        "dispatcher_cov",
        [LOAD_SQL],
        count_table="dispatcher.dispatches",
    ) as loaded:
        assert sum(loaded.counts) == DISPATCHES
        yield loaded


@pytest.mark.parametrize("generic", [False, True], ids=["custom_plan", "generic_plan"])
@pytest.mark.parametrize("tenant", ["largest", "median"])
async def test_parameter_coverage_reads_the_week_by_index(
    loaded: LoadedTenants, tenant: str, generic: bool
) -> None:
    conn = await asyncpg.connect(loaded.url)
    try:
        window = await conn.fetchrow("SELECT now() - interval '7 days' AS start, now() AS end")
    finally:
        await conn.close()
    assert window is not None
    # The production statement names ``dispatches`` unqualified (the service's search_path).
    result = await explain_prepared(
        f"{loaded.url}?search_path=dispatcher",
        PARAMETER_COVERAGE_SQL,
        ["uuid", "timestamptz", "timestamptz"],
        [loaded.tenants[tenant], window["start"], window["end"]],
        generic=generic,
    )
    print(f"\ncoverage [{tenant}, {'generic' if generic else 'custom'}]: {result.describe()}")
    assert result.seq_scans == [], f"scans {result.seq_scans}"
    assert result.indexes == {"dispatches_tenant_event_time_idx"}, f"used {result.indexes}"
