"""asyncpg access to the matcher's decisions: an order's match, the dedupe registry with its
daily statistics, and the conversion log.

Every function takes the caller's connection so the use case decides the transaction.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import asyncpg

from trackai_matcher.adapters.sessions import (
    CLICK_COLUMNS,
    click_from_row,
    identities_from,
    identities_of,
)
from trackai_matcher.adapters.status import conversion_status, enqueue_status
from trackai_matcher.domain.model import MatchDecision, Purchase, Stage
from trackai_matcher.service_layer.ports import Connection, Registration, StoredMatch

_MATCH_SQL = f"""
SELECT m.id AS match_id, m.stage, m.method, m.score, m.purchase_time,
       {CLICK_COLUMNS}, {identities_of("m.tenant_id", "c.session_id")} AS identities
FROM matcher.matches m LEFT JOIN matcher.clicks c ON c.id = m.click_id
WHERE m.tenant_id = $1 AND m.gateway = $2 AND m.order_id = $3
"""  # noqa: S608 - constant fragments only


def _stored(row: asyncpg.Record) -> StoredMatch:
    return StoredMatch(
        id=row["match_id"],
        stage=Stage(row["stage"]),
        method=row["method"],
        click=click_from_row(row) if row["id"] is not None else None,
        score=row["score"],
        purchase_time=row["purchase_time"],
        identities=identities_from(row["identities"]),
    )


_CLAIM_AND_MATCH_SQL = f"""
WITH claim AS (
    INSERT INTO matcher.inbox (message_id, message_type) VALUES ($4, 'conversion')
    ON CONFLICT (message_id) DO NOTHING RETURNING 1
)
SELECT (SELECT count(*) FROM claim) AS claimed, found.* FROM (SELECT 1) one
LEFT JOIN ({_MATCH_SQL}) found ON true
"""  # noqa: S608 - constant fragments only


async def claim_and_find_match(
    conn: Connection, message_id: str, purchase: Purchase
) -> tuple[bool, StoredMatch | None]:
    """Claim a conversion message (False: a redelivery) and read the order's decision, in one
    round trip."""
    row = await conn.fetchrow(
        _CLAIM_AND_MATCH_SQL, purchase.tenant_id, purchase.gateway, purchase.order_id, message_id
    )
    assert row is not None
    return bool(row["claimed"]), _stored(row) if row["match_id"] is not None else None


async def find_match(conn: Connection, purchase: Purchase) -> StoredMatch | None:
    row = await conn.fetchrow(_MATCH_SQL, purchase.tenant_id, purchase.gateway, purchase.order_id)
    return _stored(row) if row is not None else None


def _match_values(decision: MatchDecision) -> tuple[Any, ...]:
    click = decision.click
    return (
        decision.stage.value,
        decision.method,
        click.id if click is not None else None,
        click.session_id if click is not None else None,
        decision.score,
        decision.runner_up_score,
        decision.evidence_json(),
    )


_SAVE_MATCH_SQL = f"""
WITH saved AS (
    INSERT INTO matcher.matches (tenant_id, gateway, order_id, conversion_id, purchase_time,
        stage, method, click_id, session_id, score, runner_up_score, evidence)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb)
    ON CONFLICT (tenant_id, gateway, order_id) DO NOTHING RETURNING id
)
SELECT (SELECT id FROM saved) AS id, {identities_of("$1", "$9")} AS identities
"""  # noqa: S608 - constant fragments only


async def save_match(
    conn: Connection, purchase: Purchase, decision: MatchDecision, at: dt.datetime
) -> StoredMatch:
    """Record the order's decision once; an existing decision wins (a later click never steals).

    Concurrent consumers deciding the same order serialise on ``matches_order_uq``: the second
    one's insert does nothing and it reads the first one's committed decision.
    The matched session's identities come back in the same round trip.
    """
    row = await conn.fetchrow(
        _SAVE_MATCH_SQL,
        purchase.tenant_id,
        purchase.gateway,
        purchase.order_id,
        purchase.conversion_id,
        at,
        *_match_values(decision),
    )
    assert row is not None
    if row["id"] is not None:
        return StoredMatch(
            row["id"],
            decision.stage,
            decision.method,
            decision.click,
            decision.score,
            at,
            identities_from(row["identities"]),
        )
    stored = await find_match(conn, purchase)
    assert stored is not None, "the conflicting decision is committed before the insert returns"
    return stored


async def upgrade_unmatched(conn: Connection, match_id: int, decision: MatchDecision) -> bool:
    """Replace a ``none`` decision by a match found later (clicks consumed after the purchase
    message); an accepted match is never replaced."""
    status = await conn.execute(
        """
        UPDATE matcher.matches SET stage = $2, method = $3, click_id = $4, session_id = $5,
            score = $6, runner_up_score = $7, evidence = $8::jsonb, matched_at = now()
        WHERE id = $1 AND stage = 'none'
        """,
        match_id,
        *_match_values(decision),
    )
    return bool(status == "UPDATE 1")


# One statement: the registry row decides, and only when it was inserted do the match's EMQ and
# the day's statistics move (the day row is locked last, for as short as possible); the message's
# conversion_log row records the outcome, or ``duplicate`` when another message registered it.
_REGISTER_SQL = """
WITH reg AS (
    INSERT INTO matcher.dedupe_registry (event_id, tenant_id, gateway, order_id, event_name,
        source_status, match_id, emq, conversion_id, event_time, funnel_id, pixel_id, outcome)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    ON CONFLICT DO NOTHING RETURNING event_id
), m AS (
    UPDATE matcher.matches SET emq = $8 WHERE id = $7 AND EXISTS (SELECT 1 FROM reg)
    RETURNING id
), stats AS (
    INSERT INTO matcher.match_daily_stats AS s (tenant_id, day, conversions, deterministic,
        semi, probabilistic, unmatched, emq_sum, emq_events, low_emq_events)
    SELECT $2, ($10 AT TIME ZONE 'UTC')::date, 1,
        ($14 = 'deterministic')::int, ($14 = 'semi')::int, ($14 = 'probabilistic')::int,
        ($14 = 'none')::int, $8, 1, $15::int
    WHERE EXISTS (SELECT 1 FROM reg)
    ON CONFLICT (tenant_id, day) DO UPDATE SET
        conversions = s.conversions + 1,
        deterministic = s.deterministic + excluded.deterministic,
        semi = s.semi + excluded.semi,
        probabilistic = s.probabilistic + excluded.probabilistic,
        unmatched = s.unmatched + excluded.unmatched,
        emq_sum = s.emq_sum + excluded.emq_sum,
        emq_events = s.emq_events + 1,
        low_emq_events = s.low_emq_events + excluded.low_emq_events
    RETURNING 1
), logged AS (
    INSERT INTO matcher.conversion_log (tenant_id, gateway, order_id, message_id,
        conversion_id, status, event_time, event_name, event_id, disposition, reason)
    SELECT $2, $3, $4, $16, $9, $6, $10, $5, $1,
        CASE WHEN EXISTS (SELECT 1 FROM reg) THEN $13 ELSE 'duplicate' END,
        CASE WHEN EXISTS (SELECT 1 FROM reg) THEN $17 END
)
SELECT (SELECT count(*) FROM reg) AS registered, (SELECT count(*) FROM m) AS m,
       (SELECT count(*) FROM stats) AS stats
"""


async def register_event(
    conn: Connection, purchase: Purchase, message_id: str, registration: Registration
) -> bool:
    """Claim the event id and log the message; True only for the one transaction that
    registered it."""
    r = registration
    row = await conn.fetchrow(
        _REGISTER_SQL,
        r.event_id,
        purchase.tenant_id,
        purchase.gateway,
        purchase.order_id,
        r.event_name,
        r.source_status,
        r.match_id,
        Decimal(str(r.emq)),
        purchase.conversion_id,
        r.event_time,
        r.funnel_id,
        r.pixel_id,
        r.outcome,
        r.stage.value,
        r.low_emq,
        message_id,
        r.reason,
    )
    assert row is not None
    if not row["registered"]:
        return False
    status = "unmatched" if r.stage is Stage.NONE else "matched"
    detail = f"{r.event_name} event registered"
    if r.reason:
        detail += f", not sent: {r.reason}"
    update = conversion_status(purchase, status, detail, stage=r.stage, score=r.score)
    await enqueue_status(conn, message_id, update)
    return True


async def log_conversion(
    conn: Connection,
    purchase: Purchase,
    message_id: str,
    *,
    event_name: str | None,
    event_id: str | None,
    disposition: str,
    reason: str | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO matcher.conversion_log (tenant_id, gateway, order_id, message_id,
            conversion_id, status, event_time, event_name, event_id, disposition, reason)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        """,
        purchase.tenant_id,
        purchase.gateway,
        purchase.order_id,
        message_id,
        purchase.conversion_id,
        purchase.status,
        purchase.event_time,
        event_name,
        event_id,
        disposition,
        reason,
    )
    # Only the conversions that get no event come here: waiting for payment, or ignored.
    status = "pending_payment" if purchase.status == "pending_payment" else "ignored"
    detail = reason or f"no event for a {purchase.status} conversion"
    await enqueue_status(conn, message_id, conversion_status(purchase, status, detail))
