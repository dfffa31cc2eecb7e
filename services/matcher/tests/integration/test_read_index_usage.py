"""The read API's lookup of a conversion's match uses indexes on a realistic volume.

200,000 registered conversions (and their matches) over 200 tenants with skewed sizes; the
production statements ``BY_CONVERSION_IDS_SQL`` (BatchGetMatches, a page of the console's events)
and ``BY_CONVERSION_ID_SQL`` (ExplainMatch) are checked with ``EXPLAIN (ANALYZE, FORMAT JSON)``
as custom and as generic plans: the ``conversion_id = $2 OR match_id = (...)`` condition must be a
BitmapOr of the two indexes, not a read of every registry row of the tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from trackai_matcher.adapters.reports import BY_CONVERSION_ID_SQL, BY_CONVERSION_IDS_SQL
from trackai_testing.explain import LoadedTenants, explain_prepared, loaded_clone

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONVERSIONS = 200_000
TENANTS = 200

# Tenant floor(TENANTS * r^2): a few large tenants, a long tail. Every registered conversion has
# its match row (85% with a click), as the consumer writes them.
LOAD_SQL = f"""
CREATE TEMP TABLE draws AS
SELECT g, md5('tenant' || floor({TENANTS} * power(random(), 2))::int)::uuid AS tenant_id,
       md5('conversion' || g)::uuid AS conversion_id, now() - random() * interval '30 days' AS at,
       random() < 0.85 AS clicked
FROM generate_series(1, {CONVERSIONS}) AS g;
INSERT INTO matcher.matches (
    id, tenant_id, gateway, order_id, conversion_id, purchase_time, stage, session_id, score,
    matched_at)
SELECT g, tenant_id, 'kiwify', 'order-' || g, conversion_id, at,
       CASE WHEN clicked THEN 'deterministic' ELSE 'none' END,
       CASE WHEN clicked THEN 'sess-' || g END, CASE WHEN clicked THEN 1.0 END, at
FROM draws;
INSERT INTO matcher.dedupe_registry (
    event_id, tenant_id, gateway, order_id, event_name, source_status, match_id, emq,
    registered_at, conversion_id, event_time)
SELECT encode(sha256(convert_to('event' || g, 'UTF8')), 'hex'), tenant_id, 'kiwify',
       'order-' || g, 'Purchase', 'approved', g, 6.5, at, conversion_id, at
FROM draws;
ANALYZE matcher.matches;
ANALYZE matcher.dedupe_registry;
"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def loaded(postgres_url: str, migrated_template: str) -> AsyncIterator[LoadedTenants]:
    async with loaded_clone(
        postgres_url,
        migrated_template,
        "matcher_read",
        [LOAD_SQL],
        count_table="matcher.dedupe_registry",
    ) as loaded:
        assert sum(loaded.counts) == CONVERSIONS
        print(
            f"\nmatcher registry: {CONVERSIONS} over {len(loaded.counts)} tenants, "
            f"largest {loaded.counts[0]}"
        )
        yield loaded


async def _page(loaded: LoadedTenants, tenant: str) -> list[uuid.UUID]:
    """The tenant's 25 newest conversions: one page of the console's events."""
    conn = await asyncpg.connect(loaded.url)
    try:
        rows = await conn.fetch(
            "SELECT conversion_id FROM matcher.dedupe_registry WHERE tenant_id = $1 "
            "ORDER BY event_time DESC LIMIT 25",
            loaded.tenants[tenant],
        )
    finally:
        await conn.close()
    assert len(rows) == 25
    return [r["conversion_id"] for r in rows]


@pytest.mark.parametrize("generic", [False, True], ids=["custom_plan", "generic_plan"])
@pytest.mark.parametrize("tenant", ["largest", "median"])
@pytest.mark.parametrize("batch", [True, False], ids=["batch_get_matches", "explain_match"])
async def test_match_of_a_conversion_is_found_by_index(
    loaded: LoadedTenants, tenant: str, generic: bool, batch: bool
) -> None:
    page = await _page(loaded, tenant)
    if batch:
        sql, types = BY_CONVERSION_IDS_SQL, ["uuid", "uuid[]"]
        value: object = "{" + ",".join(str(c) for c in page) + "}"
    else:
        sql, types, value = BY_CONVERSION_ID_SQL, ["uuid", "uuid"], page[-1]
    result = await explain_prepared(
        loaded.url, sql, types, [loaded.tenants[tenant], value], generic=generic
    )
    print(f"\n[{tenant}, {'generic' if generic else 'custom'}]: {result.describe()}")
    assert not {"dedupe_registry", "matches"} & set(result.seq_scans), result.seq_scans
    wanted = {"dedupe_registry_conversion_idx", "dedupe_registry_match_idx"}
    assert wanted <= result.indexes, f"used {result.indexes}"
    # Not every registry row of the tenant: the tenant-only indexes serve no part of it.
    assert not {"dedupe_registry_tenant_time_idx", "dedupe_registry_tenant_event_time_idx"} & (
        result.indexes
    )
