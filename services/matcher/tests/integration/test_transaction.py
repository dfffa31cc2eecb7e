"""The consumer's transaction: committed on success, rolled back on any error, generic plans only
inside it, and nothing left on the pooled connection (the consume process skips asyncpg's reset)."""

from __future__ import annotations

import asyncpg
import pytest

from trackai_kit.postgres import create_pool
from trackai_kit.settings import PostgresSettings
from trackai_matcher.adapters import repository as repo

pytestmark = pytest.mark.integration


class Failed(Exception):
    pass


async def test_transaction_commits_rolls_back_and_leaves_the_connection_clean(
    database_url: str,
) -> None:
    # One connection, released without asyncpg's reset, as in the consume process.
    pool = await create_pool(
        PostgresSettings(url=database_url, pool_min=1, pool_max=1),
        schema="matcher",
        reset_on_release=False,
    )
    try:
        async with repo.transaction(pool) as conn:
            assert await conn.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
            assert await repo.claim_message(conn, "kept", "hit")
        with pytest.raises(Failed):
            async with repo.transaction(pool) as conn:
                assert await repo.claim_message(conn, "raised", "hit")
                raise Failed
        with pytest.raises(asyncpg.CheckViolationError):
            async with repo.transaction(pool) as conn:
                assert await repo.claim_message(conn, "refused", "hit")
                await conn.execute(
                    "INSERT INTO matcher.clicks (tenant_id, session_id, first_seen_at, "
                    "last_seen_at, hits) VALUES (gen_random_uuid(), 's', now(), now(), 0)"
                )
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SHOW plan_cache_mode") == "auto"
            claimed = await conn.fetch("SELECT message_id FROM matcher.inbox")
    finally:
        await pool.close()
    assert [r["message_id"] for r in claimed] == ["kept"]
