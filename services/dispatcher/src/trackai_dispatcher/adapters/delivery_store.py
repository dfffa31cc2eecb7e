"""The write side of deliveries in PostgreSQL (schema ``dispatcher``): each batch's two
transactions (per-event state, every attempt with the events it carried), the shared circuit
breakers, and the monitor's expiry sweep and health figures. Implements the service layer's
``DeliveryStore`` and ``HealthStore``; the API's reads and the replays are in ``query_store``.

Bulk statements take arrays and ``unnest`` them, so a batch of 1,000 events costs a handful of
round trips. Every value is a bind parameter; only constant SQL fragments are spliced in.
"""

# ruff: noqa: S608

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from trackai_dispatcher.domain.breaker import Breaker, BreakerState
from trackai_dispatcher.domain.model import Destination, State
from trackai_dispatcher.service_layer.ports import (
    AttemptRecord,
    Change,
    Current,
    Expired,
    HealthCounts,
    NewDispatch,
    UnclosedBreaker,
)

#: A connection a transaction runs on.
TxConn = asyncpg.Connection | PoolConnectionProxy
#: Where a statement runs: a transaction's connection, or the pool for a lone statement.
Conn = TxConn | asyncpg.Pool


async def insert_new(conn: Conn, items: Sequence[NewDispatch]) -> None:
    """Store first sightings; a known event id (redelivery, duplicate publish) is left as is."""
    await conn.execute(
        """
        INSERT INTO dispatches (event_id, tenant_id, pixel_id, funnel_id, conversion_id,
                                event_name, event_time, payload, match_stage, match_score, emq)
        SELECT u.event_id, u.tenant_id, u.pixel_id, nullif(u.funnel_id, ''),
               nullif(u.conversion_id, ''), u.event_name, to_timestamp(u.event_time),
               u.payload::jsonb, nullif(u.match_stage, ''), u.match_score, u.emq
        FROM unnest($1::bpchar[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::bigint[], $8::text[], $9::text[], $10::float8[], $11::numeric[])
             AS u(event_id, tenant_id, pixel_id, funnel_id, conversion_id, event_name,
                  event_time, payload, match_stage, match_score, emq)
        ORDER BY u.event_id
        ON CONFLICT (event_id) DO NOTHING
        """,
        [i.event_id for i in items],
        [i.tenant_id for i in items],
        [i.pixel_id for i in items],
        [i.funnel_id for i in items],
        [i.conversion_id for i in items],
        [i.event_name for i in items],
        [i.event_time for i in items],
        [json.dumps(i.payload) for i in items],
        [i.match_stage for i in items],
        [i.match_score for i in items],
        [round(i.emq, 2) for i in items],
    )


async def lock_current(conn: Conn, event_ids: Sequence[str]) -> dict[str, Current]:
    """Lock the events' rows (in id order, so concurrent batches cannot deadlock)."""
    rows = await conn.fetch(
        """
        SELECT event_id, state, attempts, retry_step,
               coalesce(claim_expires_at > now(), false) AS claimed
        FROM dispatches WHERE event_id = ANY($1::bpchar[]) ORDER BY event_id FOR UPDATE
        """,
        list(event_ids),
    )
    return {
        r["event_id"]: Current(
            r["event_id"], State(r["state"]), r["attempts"], r["retry_step"], r["claimed"]
        )
        for r in rows
    }


async def claim(conn: Conn, event_ids: Sequence[str], batch_id: uuid.UUID, lease_s: float) -> None:
    await conn.execute(
        """
        UPDATE dispatches SET claim_expires_at = now() + make_interval(secs => $3),
                              last_batch_id = $2, updated_at = now()
        WHERE event_id = ANY($1::bpchar[])
        """,
        list(event_ids),
        batch_id,
        lease_s,
    )


async def apply_changes(conn: Conn, changes: Sequence[Change]) -> None:
    """Write each event's new state; releases the batch's claim on them."""
    if not changes:
        return
    ordered = sorted(changes, key=lambda c: c.event_id)
    await conn.execute(
        """
        UPDATE dispatches d SET
            state = coalesce(u.state, d.state),
            attempts = d.attempts + u.posts,
            retry_step = coalesce(u.retry_step, d.retry_step),
            reason = CASE WHEN u.state IS NULL THEN d.reason ELSE u.reason END,
            detail = CASE WHEN u.state IS NULL THEN d.detail ELSE u.detail END,
            last_http_status = coalesce(u.http_status, d.last_http_status),
            last_code = CASE WHEN u.posts > 0 THEN u.code ELSE d.last_code END,
            last_subcode = CASE WHEN u.posts > 0 THEN u.subcode ELSE d.last_subcode END,
            next_attempt_at = CASE WHEN u.state IS NULL THEN d.next_attempt_at
                                   ELSE u.next_attempt_at END,
            sent_at = CASE WHEN coalesce(u.state, d.state) = 'sent'
                           THEN coalesce(d.sent_at, now()) END,
            claim_expires_at = NULL,
            park_cycles = d.park_cycles + CASE WHEN u.state = 'parked' THEN 1 ELSE 0 END,
            updated_at = now()
        FROM unnest($1::bpchar[], $2::text[], $3::int[], $4::smallint[], $5::text[], $6::text[],
                    $7::smallint[], $8::int[], $9::int[], $10::timestamptz[])
             AS u(event_id, state, posts, retry_step, reason, detail, http_status, code,
                  subcode, next_attempt_at)
        WHERE d.event_id = u.event_id
        """,
        [c.event_id for c in ordered],
        [c.state.value if c.state else None for c in ordered],
        [c.posts for c in ordered],
        [c.retry_step for c in ordered],
        [c.reason for c in ordered],
        [c.detail[:2000] if c.detail else c.detail for c in ordered],
        [c.http_status for c in ordered],
        [c.code for c in ordered],
        [c.subcode for c in ordered],
        [c.next_attempt_at for c in ordered],
    )


async def record_attempt(conn: Conn, record: AttemptRecord) -> int:
    """One ``dispatch_attempts`` row and its ``dispatch_attempt_events`` links, in one trip."""
    attempt_id: int = await conn.fetchval(
        """
        WITH a AS (
            INSERT INTO dispatch_attempts (
                batch_id, tenant_id, pixel_id, attempt, event_count, started_at, finished_at,
                latency_ms, outcome, http_status, meta_code, meta_subcode, is_transient,
                fbtrace_id, events_received, error_message, test_event_code)
            VALUES ($1, $2, $3, $4, cardinality($5::bpchar[]), $6, $7, $8, $9, $10, $11, $12,
                    $13, $14, $15, $16, $17)
            RETURNING id
        ), links AS (
            INSERT INTO dispatch_attempt_events (event_id, attempt_id)
            SELECT e, a.id FROM a, unnest($5::bpchar[]) AS e
        )
        SELECT id FROM a
        """,
        record.batch_id,
        record.destination.tenant_id,
        record.destination.pixel_id,
        record.attempt,
        list(record.event_ids),
        record.started_at,
        record.finished_at,
        record.latency_ms,
        record.outcome.value,
        record.http_status,
        record.meta_code,
        record.meta_subcode,
        record.is_transient,
        record.fbtrace_id,
        record.events_received,
        record.error_message[:2000] if record.error_message else None,
        record.test_event_code,
    )
    return attempt_id


# --- circuit breakers -------------------------------------------------------------------------


_BREAKER_COLUMNS = """
    state, consecutive_failures, opened_at, probe_after, last_code, last_subcode, reason
"""


async def read_breaker(conn: Conn, destination: Destination) -> Breaker:
    """The destination's breaker as last committed, without a lock (closed when it has none):
    enough to see that a closed breaker with no failures has nothing to change."""
    row = await conn.fetchrow(
        f"SELECT {_BREAKER_COLUMNS} FROM breaker_states WHERE tenant_id = $1 AND pixel_id = $2",
        destination.tenant_id,
        destination.pixel_id,
    )
    return Breaker() if row is None else _breaker(row)


async def lock_breaker(conn: Conn, destination: Destination) -> Breaker:
    """The destination's breaker, row-locked until the transaction ends (created closed)."""
    await conn.execute(
        """
        INSERT INTO breaker_states (tenant_id, pixel_id) VALUES ($1, $2)
        ON CONFLICT (tenant_id, pixel_id) DO NOTHING
        """,
        destination.tenant_id,
        destination.pixel_id,
    )
    row = await conn.fetchrow(
        f"""
        SELECT {_BREAKER_COLUMNS}
        FROM breaker_states WHERE tenant_id = $1 AND pixel_id = $2 FOR UPDATE
        """,
        destination.tenant_id,
        destination.pixel_id,
    )
    assert row is not None
    return _breaker(row)


def _breaker(row: asyncpg.Record) -> Breaker:
    return Breaker(
        state=BreakerState(row["state"]),
        consecutive_failures=row["consecutive_failures"],
        opened_at=row["opened_at"],
        probe_after=row["probe_after"],
        last_code=row["last_code"],
        last_subcode=row["last_subcode"],
        reason=row["reason"],
    )


async def save_breaker(conn: Conn, destination: Destination, breaker: Breaker) -> None:
    await conn.execute(
        """
        UPDATE breaker_states SET state = $3, consecutive_failures = $4, opened_at = $5,
               probe_after = $6, last_code = $7, last_subcode = $8, reason = $9,
               updated_at = now()
        WHERE tenant_id = $1 AND pixel_id = $2
        """,
        destination.tenant_id,
        destination.pixel_id,
        breaker.state.value,
        breaker.consecutive_failures,
        breaker.opened_at,
        breaker.probe_after,
        breaker.last_code,
        breaker.last_subcode,
        breaker.reason[:500] if breaker.reason else None,
    )


async def failing_destinations(conn: Conn, window_s: float) -> int:
    """Destinations whose requests failed on Meta's side (timeouts, 5xx, transient codes)
    within the window, across every replica (served by the failures partial index)."""
    count: int = await conn.fetchval(
        """
        SELECT count(DISTINCT (tenant_id, pixel_id)) FROM dispatch_attempts
        WHERE outcome <> 'sent' AND started_at > now() - make_interval(secs => $1)
          AND outcome IN ('retryable', 'timeout')
        """,
        window_s,
    )
    return count


async def health_counts(conn: Conn) -> HealthCounts:
    """What the monitoring gauges show: dead events awaiting replay (the database side of the
    DLQ), and destinations whose breaker is open or half-open (both from partial indexes)."""
    row = await conn.fetchrow(
        """
        SELECT (SELECT count(*) FROM dispatches WHERE state = 'dead') AS dead,
               count(*) FILTER (WHERE state = 'open') AS open,
               count(*) FILTER (WHERE state = 'half_open') AS half_open
        FROM breaker_states WHERE state <> 'closed'
        """
    )
    assert row is not None
    return HealthCounts(row["dead"], row["open"], row["half_open"])


async def unclosed_breakers(conn: Conn) -> list[UnclosedBreaker]:
    """(tenant id, pixel id, state) of every destination whose breaker is open or half-open."""
    rows = await conn.fetch(
        "SELECT tenant_id, pixel_id, state FROM breaker_states WHERE state <> 'closed'"
    )
    return [UnclosedBreaker(str(r["tenant_id"]), str(r["pixel_id"]), str(r["state"])) for r in rows]


async def expire_overdue(conn: Conn, horizon: datetime, detail: str) -> list[Expired]:
    """Undelivered events older than Meta's limit and held by no batch become expired."""
    rows = await conn.fetch(
        """
        UPDATE dispatches SET state = 'expired', reason = 'event_too_old', detail = $2,
               next_attempt_at = NULL, updated_at = now()
        WHERE state IN ('pending', 'retrying', 'parked') AND event_time < $1
          AND (claim_expires_at IS NULL OR claim_expires_at < now())
        RETURNING event_id, tenant_id
        """,
        horizon,
        detail,
    )
    return [Expired(r["event_id"], str(r["tenant_id"])) for r in rows]


class _Transaction:
    """:class:`~trackai_dispatcher.service_layer.ports.DeliveryTransaction` on one connection."""

    def __init__(self, conn: TxConn) -> None:
        self._conn = conn

    async def insert_new(self, items: Sequence[NewDispatch]) -> None:
        await insert_new(self._conn, items)

    async def lock_current(self, event_ids: Sequence[str]) -> dict[str, Current]:
        return await lock_current(self._conn, event_ids)

    async def claim(self, event_ids: Sequence[str], batch_id: uuid.UUID, lease_s: float) -> None:
        await claim(self._conn, event_ids, batch_id, lease_s)

    async def apply_changes(self, changes: Sequence[Change]) -> None:
        await apply_changes(self._conn, changes)

    async def record_attempt(self, record: AttemptRecord) -> None:
        await record_attempt(self._conn, record)

    async def read_breaker(self, destination: Destination) -> Breaker:
        return await read_breaker(self._conn, destination)

    async def lock_breaker(self, destination: Destination) -> Breaker:
        return await lock_breaker(self._conn, destination)

    async def save_breaker(self, destination: Destination, breaker: Breaker) -> None:
        await save_breaker(self._conn, destination, breaker)


class OnPool:
    """An adapter over the pool: a lone statement runs on the pool itself, a transaction on a
    connection it acquires."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool


class PostgresDeliveryStore(OnPool):
    """The service layer's ``DeliveryStore``: a batch's transactions on the pool."""

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Transaction]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield _Transaction(conn)

    async def read_breaker(self, destination: Destination) -> Breaker:
        return await read_breaker(self._pool, destination)


class PostgresHealthStore(OnPool):
    """The service layer's ``HealthStore``: the monitor's sweep and figures."""

    async def expire_overdue(self, horizon: datetime, detail: str) -> list[Expired]:
        return await expire_overdue(self._pool, horizon, detail)

    async def failing_destinations(self, window_s: float) -> int:
        return await failing_destinations(self._pool, window_s)

    async def health_counts(self) -> HealthCounts:
        return await health_counts(self._pool)

    async def unclosed_breakers(self) -> list[UnclosedBreaker]:
        return await unclosed_breakers(self._pool)
