"""The matcher's store: asyncpg access to the ``matcher`` schema, as one namespace of statements.

Every function takes the caller's connection so the use case decides the transaction. This module
holds the transaction and the inbox claim, and gathers the statements of ``sessions`` (hits folded
into sessions and identities), ``candidates`` (the stage queries) and ``decisions`` (matches,
registry, conversion log): together they satisfy the service layer's ``MatchStore`` and
``CandidateStore``, and bootstrap wires this module as both.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import cast

import asyncpg

from trackai_matcher.adapters.candidates import (
    EXACT_BRANCHES,
    TENANT_SAMPLE_SQL,
    exact_candidates,
    exact_query,
    probabilistic_candidates,
    tenant_sample,
)
from trackai_matcher.adapters.decisions import (
    claim_and_find_match,
    find_match,
    log_conversion,
    register_event,
    save_match,
    upgrade_unmatched,
)
from trackai_matcher.adapters.sessions import (
    session_identities,
    upsert_click,
    upsert_identity,
)
from trackai_matcher.service_layer.ports import Connection

__all__ = [
    "BEGIN_GENERIC",
    "EXACT_BRANCHES",
    "TENANT_SAMPLE_SQL",
    "Connection",
    "claim_and_find_match",
    "claim_message",
    "exact_candidates",
    "exact_query",
    "find_match",
    "log_conversion",
    "probabilistic_candidates",
    "register_event",
    "save_match",
    "session_identities",
    "tenant_sample",
    "transaction",
    "upgrade_unmatched",
    "upsert_click",
    "upsert_identity",
]

#: Starts a transaction whose statements run generic plans only (one round trip: BEGIN itself).
BEGIN_GENERIC = "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan"


@contextlib.asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[Connection]:
    """A pooled connection inside a transaction, committed when the block exits cleanly.

    Its statements run their prepared statement's generic plan, never a custom one. A custom plan
    is costed with the bound tenant id, and statistics gathered before a tenant's launch-day burst
    (autoanalyze lags behind it, or is off) rate that tenant at ~0 rows: every index starting with
    ``tenant_id`` then looks as cheap as the lookup's own, and PostgreSQL read all of the tenant's
    sessions through one of them to find one session (0.3-1.1 s per stage 1-2 statement, 0.9 s
    per stage-3 search, 25-39 ms per order lookup at 240k sessions and 120k orders). A generic
    plan rates ``tenant_id = $1`` by the number of tenants, so each lookup keeps its key's index
    (docs/schema/matcher.md); it is also planned once per connection, not on every execution.
    """
    async with pool.acquire() as proxy:
        # The pool's proxy forwards every Connection method; the stubs type it separately.
        conn = cast(Connection, proxy)
        await conn.execute(BEGIN_GENERIC)
        try:
            yield conn
        except BaseException:
            # A broken connection cannot roll back (the pool discards it): keep the first error.
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")


async def claim_message(conn: Connection, message_id: str, message_type: str) -> bool:
    """Record a consumed message id; False when it was processed before (a redelivery)."""
    status = await conn.execute(
        "INSERT INTO matcher.inbox (message_id, message_type) VALUES ($1, $2) "
        "ON CONFLICT (message_id) DO NOTHING",
        message_id,
        message_type,
    )
    return bool(status == "INSERT 0 1")
