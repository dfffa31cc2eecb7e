"""asyncpg access to the ``matcher`` schema: sessions, identities, stage queries, decisions.

Every function takes the caller's connection so the use case decides the transaction. The stage
queries are written for their indexes (docs/schema/matcher.md lists which serves which).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import asyncpg

from trackai_kit.pii import is_sha256_hex
from trackai_matcher.domain.model import Click, Hit, MatchDecision, Purchase, Stage
from trackai_matcher.domain.scoring import ValueCounts
from trackai_matcher.domain.useragent import UaTraits
from trackai_matcher.service_layer.ports import (
    ProbabilisticCandidates,
    Registration,
    SessionIdentity,
    StoredMatch,
)

Connection = asyncpg.Connection

#: Columns of a click as :func:`click_from_row` reads them (``c`` is the clicks alias).
CLICK_COLUMNS = """c.id, c.session_id, c.first_seen_at, c.last_seen_at, c.fbclid, c.fbc, c.fbp,
    host(c.client_ip) AS client_ip, c.ip_prefix::text AS ip_network, c.user_agent,
    c.browser_family, c.os_family, c.device_type, c.landing_url,
    coalesce(c.utm->>'utm_campaign', '') AS campaign, c.funnel_id, c.visitor_id"""

#: Sessions retrieved per candidate source in stage 3, and the cap on value counts (a value
#: shared by more sessions than this weighs next to nothing anyway).
CANDIDATES_PER_SOURCE = 100
COUNT_CAP = 2000
#: A session may go on after the purchase (thank-you page): its last hit can be later.
AFTER_PURCHASE = dt.timedelta(hours=1)
SEMI_WINDOW = dt.timedelta(days=7)


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


def click_from_row(row: asyncpg.Record) -> Click:
    funnel = row["funnel_id"]
    return Click(
        id=row["id"],
        session_id=row["session_id"],
        first_seen_at=row["first_seen_at"],
        last_seen_at=row["last_seen_at"],
        fbclid=row["fbclid"],
        fbc=row["fbc"],
        fbp=row["fbp"],
        client_ip=row["client_ip"],
        ip_network=row["ip_network"],
        user_agent=row["user_agent"],
        browser_family=row["browser_family"],
        os_family=row["os_family"],
        device_type=row["device_type"],
        landing_url=row["landing_url"],
        campaign=row["campaign"] or "",
        funnel_id=str(funnel) if funnel is not None else None,
        visitor_id=row["visitor_id"],
    )


async def claim_message(conn: Connection, message_id: str, message_type: str) -> bool:
    """Record a consumed message id; False when it was processed before (a redelivery)."""
    status = await conn.execute(
        "INSERT INTO matcher.inbox (message_id, message_type) VALUES ($1, $2) "
        "ON CONFLICT (message_id) DO NOTHING",
        message_id,
        message_type,
    )
    return bool(status == "INSERT 0 1")


def visitor_id(hit: Hit) -> str | None:
    """The tracking script's visitor id, which hits carry as ``user_data.external_id``: 64
    lowercase hex, the very value the pixel was given as ``external_id``."""
    value = hit.external_id
    return value if value is not None and is_sha256_hex(value) else None


async def upsert_click(conn: Connection, hit: Hit, traits: UaTraits) -> None:
    """Fold a hit into its session: first/last seen widen, newer identifiers win, the first
    landing page, referrer, UTM and funnel stay."""
    t = hit.tracking
    await conn.execute(
        """
        INSERT INTO matcher.clicks AS c (
            tenant_id, session_id, first_seen_at, last_seen_at, fbclid, fbc, fbp, client_ip,
            user_agent, browser_family, os_family, device_type, landing_url, referrer, utm,
            funnel_id, visitor_id)
        VALUES ($1, $2, $3, $3, $4, $5, $6, $7::inet, $8, $9, $10, $11, $12, $13, $14::jsonb, $15,
            $16)
        ON CONFLICT (tenant_id, session_id) DO UPDATE SET
            first_seen_at = least(c.first_seen_at, excluded.first_seen_at),
            last_seen_at = greatest(c.last_seen_at, excluded.last_seen_at),
            hits = c.hits + 1,
            fbclid = coalesce(excluded.fbclid, c.fbclid),
            fbc = coalesce(excluded.fbc, c.fbc),
            fbp = coalesce(excluded.fbp, c.fbp),
            client_ip = coalesce(excluded.client_ip, c.client_ip),
            user_agent = coalesce(excluded.user_agent, c.user_agent),
            browser_family = coalesce(excluded.browser_family, c.browser_family),
            os_family = coalesce(excluded.os_family, c.os_family),
            device_type = coalesce(excluded.device_type, c.device_type),
            landing_url = coalesce(c.landing_url, excluded.landing_url),
            referrer = coalesce(c.referrer, excluded.referrer),
            utm = CASE WHEN c.utm = '{}'::jsonb THEN excluded.utm ELSE c.utm END,
            funnel_id = coalesce(c.funnel_id, excluded.funnel_id),
            visitor_id = coalesce(excluded.visitor_id, c.visitor_id)
        """,
        hit.tenant_id,
        hit.session_id,
        hit.seen_at,
        t.fbclid or None,
        t.fbc or None,
        t.fbp or None,
        hit.client_ip,
        hit.user_agent or None,
        traits.browser_family,
        traits.os_family,
        traits.device_type,
        hit.page_url or None,
        hit.referrer or None,
        dict(t.utm),
        hit.funnel_id,
        visitor_id(hit),
    )


async def upsert_identity(conn: Connection, hit: Hit, source: str) -> None:
    await conn.execute(
        """
        INSERT INTO matcher.identities AS i (
            tenant_id, session_id, email_hash, phone_hash, external_id, source, first_seen_at,
            last_seen_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
        ON CONFLICT ON CONSTRAINT identities_sighting_uq DO UPDATE SET
            first_seen_at = least(i.first_seen_at, excluded.first_seen_at),
            last_seen_at = greatest(i.last_seen_at, excluded.last_seen_at),
            external_id = coalesce(i.external_id, excluded.external_id)
        """,
        hit.tenant_id,
        hit.session_id,
        hit.email_hash,
        hit.phone_hash,
        hit.external_id,
        source,
        hit.seen_at,
    )


def _identity_branch(column: str, value: str, lookback: str) -> str:
    """Stage 1 by e-mail or phone: the identity's latest sighting in the look-back, then the
    visitor's most recent session before the purchase (that one or a later one, same _fbp)."""
    return f"""(SELECT '{column}' AS method, {CLICK_COLUMNS} FROM (
    SELECT i.session_id FROM matcher.identities i
     WHERE i.tenant_id = $1 AND i.{column} = {value} AND i.last_seen_at <= $2::timestamptz
       AND i.last_seen_at > $2::timestamptz - {lookback}::interval
     ORDER BY i.last_seen_at DESC LIMIT 1) i
  JOIN matcher.clicks s ON s.tenant_id = $1 AND s.session_id = i.session_id
  CROSS JOIN LATERAL (
    SELECT * FROM matcher.clicks c
     WHERE c.tenant_id = $1 AND (c.id = s.id OR c.fbp = s.fbp)
       AND c.first_seen_at BETWEEN s.first_seen_at AND $2::timestamptz
     ORDER BY c.first_seen_at DESC LIMIT 1) c)"""  # noqa: S608 - constant fragments only


def _semi_branch(column: str, value: str, window: str) -> str:
    """Stage 2: the most recent session with this fbclid / fbc / fbp within 7 days before."""
    return f"""(SELECT '{column}' AS method, {CLICK_COLUMNS} FROM matcher.clicks c
  WHERE c.tenant_id = $1 AND c.{column} = {value}
    AND c.first_seen_at BETWEEN $2::timestamptz - {window}::interval AND $2::timestamptz
  ORDER BY c.first_seen_at DESC LIMIT 1)"""  # noqa: S608 - constant fragments only


def _carrier_branch(values: list[str]) -> str:
    """Stage 1 by session id: a pass-through value naming a session that began by then (one
    parameter per value: an array would make every custom plan look cheaper than the generic)."""
    return f"""(SELECT 'carrier' AS method, {CLICK_COLUMNS} FROM matcher.clicks c
  WHERE c.tenant_id = $1 AND c.session_id IN ({", ".join(values)})
    AND c.first_seen_at <= $2::timestamptz)"""  # noqa: S608 - constant fragments only


#: The stage 1 and 2 branches, in the order the query lists them.
EXACT_BRANCHES = ("carrier", "email_hash", "phone_hash", "fbclid", "fbc", "fbp")


@dataclass(frozen=True)
class ExactQuery:
    sql: str
    #: What $1..$n are bound to: ``tenant``, ``at``, a branch name, ``carrier<i>`` (the i-th
    #: session id carried), ``lookback`` or ``semi``.
    params: tuple[str, ...]


@functools.cache
def exact_query(branches: tuple[str, ...], carriers: int = 0) -> ExactQuery:
    """Stages 1 and 2 in one round trip, with only the branches the purchase has values for.

    Each branch uses its own index and returns at most what the decision needs; the use case
    picks the strongest branch that answered. One statement per combination of branches (a
    handful occur), each a stable string that asyncpg prepares once per connection, with every
    parameter present: its generic plan (the only kind :func:`transaction` runs) is planned once
    and serves every purchase.
    """
    params = ["tenant", "at"]

    def ref(name: str) -> str:
        if name not in params:
            params.append(name)
        return f"${params.index(name) + 1}"

    parts = []
    for branch in branches:
        if branch == "carrier":
            parts.append(_carrier_branch([ref(f"carrier{i}") for i in range(carriers)]))
        elif branch in ("email_hash", "phone_hash"):
            parts.append(_identity_branch(branch, ref(branch), ref("lookback")))
        else:
            parts.append(_semi_branch(branch, ref(branch), ref("semi")))
    return ExactQuery("\nUNION ALL\n".join(parts), tuple(params))


async def exact_candidates(
    conn: Connection, purchase: Purchase, at: dt.datetime, lookback: dt.timedelta
) -> list[tuple[str, Click]]:
    """Sessions found by stage 1 (session id carriers, e-mail, phone) and stage 2 (fbclid, fbc,
    fbp), as (branch, click) pairs; no round trip when the purchase carries none of them."""
    t = purchase.tracking
    carriers = [value for _, value in purchase.session_carriers()]
    values: dict[str, object] = {
        "carrier": carriers,
        "email_hash": purchase.email_hash,
        "phone_hash": purchase.phone_hash,
        "fbclid": t.fbclid_or_from_fbc(),
        "fbc": t.fbc,
        "fbp": t.fbp,
    }
    branches = tuple(branch for branch in EXACT_BRANCHES if values[branch])
    if not branches:
        return []
    values |= {"tenant": purchase.tenant_id, "at": at, "lookback": lookback, "semi": SEMI_WINDOW}
    # Padded to a power of two with the last value (same result): the number of statement
    # variants stays small whatever a webhook carries.
    slots = 1 << (len(carriers) - 1).bit_length() if carriers else 0
    padded = carriers + carriers[-1:] * (slots - len(carriers))
    values |= {f"carrier{i}": value for i, value in enumerate(padded)}
    query = exact_query(branches, slots)
    rows = await conn.fetch(query.sql, *(values[name] for name in query.params))
    return [(row["method"], click_from_row(row)) for row in rows]


_NETWORK = "network(set_masklen($2::inet, CASE WHEN family($2::inet) = 4 THEN 24 ELSE 64 END))"
_IN_WINDOW = (
    "last_seen_at BETWEEN $3::timestamptz - $5::interval AND $3::timestamptz + $6::interval"
)
_PROBABILISTIC_SQL = f"""
WITH cand AS (
    (SELECT id FROM matcher.clicks WHERE tenant_id = $1 AND client_ip = $2::inet AND {_IN_WINDOW}
      ORDER BY last_seen_at DESC LIMIT {CANDIDATES_PER_SOURCE})
    UNION
    (SELECT id FROM matcher.clicks WHERE tenant_id = $1 AND ip_prefix = {_NETWORK}
       AND {_IN_WINDOW} ORDER BY last_seen_at DESC LIMIT {CANDIDATES_PER_SOURCE})
    UNION
    (SELECT id FROM matcher.clicks WHERE tenant_id = $1 AND ua_digest = md5($4)::uuid
       AND {_IN_WINDOW} ORDER BY last_seen_at DESC LIMIT {CANDIDATES_PER_SOURCE})
)
SELECT {CLICK_COLUMNS},
    {_NETWORK}::text AS purchase_network,
    (SELECT count(*) FROM (SELECT 1 FROM matcher.clicks WHERE tenant_id = $1
        AND client_ip = $2::inet AND {_IN_WINDOW} LIMIT {COUNT_CAP}) s) AS n_ip,
    (SELECT count(*) FROM (SELECT 1 FROM matcher.clicks WHERE tenant_id = $1
        AND ip_prefix = {_NETWORK} AND {_IN_WINDOW} LIMIT {COUNT_CAP}) s) AS n_network,
    (SELECT count(*) FROM (SELECT 1 FROM matcher.clicks WHERE tenant_id = $1
        AND ua_digest = md5($4)::uuid AND {_IN_WINDOW} LIMIT {COUNT_CAP}) s) AS n_ua
FROM cand JOIN matcher.clicks c ON c.id = cand.id
WHERE c.first_seen_at <= $3
"""  # noqa: S608 - constant fragments only; every value is a bound parameter


async def probabilistic_candidates(
    conn: Connection,
    tenant_id: str,
    *,
    client_ip: str | None,
    user_agent: str | None,
    at: dt.datetime,
    window: dt.timedelta,
) -> ProbabilisticCandidates:
    """Sessions of the window sharing the IP, its /24-/64 or the user agent, with value counts."""
    rows = await conn.fetch(
        _PROBABILISTIC_SQL, tenant_id, client_ip, at, user_agent, window, AFTER_PURCHASE
    )
    if not rows:
        return ProbabilisticCandidates([], ValueCounts(0, 0, 0), None)
    first = rows[0]
    counts = ValueCounts(first["n_ip"], first["n_network"], first["n_ua"])
    return ProbabilisticCandidates(
        [click_from_row(r) for r in rows], counts, first["purchase_network"]
    )


#: The tenant's most recent sessions. ``hits >= 1`` holds for every session (a CHECK); stating it
#: is what lets this statement, and no other, read ``clicks_tenant_recent_idx`` (see that
#: migration: the stage-3 lookups must keep their keys' indexes).
TENANT_SAMPLE_SQL = """
SELECT browser_family, os_family, device_type, utm->>'utm_campaign' AS campaign, last_seen_at
FROM matcher.clicks WHERE tenant_id = $1 AND hits >= 1 ORDER BY last_seen_at DESC LIMIT $2
"""


async def tenant_sample(conn: Connection, tenant_id: str, size: int) -> list[asyncpg.Record]:
    """The tenant's most recent sessions' traits, for value frequencies (``TenantProfile``)."""
    return await conn.fetch(TENANT_SAMPLE_SQL, tenant_id, size)


#: The matched session's identities, most recent first, as an array of (email_hash, phone_hash,
#: external_id) records: read in the statement that reads or records the decision.
IDENTITIES_LIMIT = 3


def _identities_of(tenant: str, session: str) -> str:
    return f"""array(SELECT (i.email_hash, i.phone_hash, i.external_id) FROM matcher.identities i
    WHERE i.tenant_id = {tenant} AND i.session_id = {session}
    ORDER BY i.last_seen_at DESC LIMIT {IDENTITIES_LIMIT})"""  # noqa: S608 - constant fragments


def _identities(
    values: Sequence[tuple[str | None, str | None, str | None]] | None,
) -> list[SessionIdentity]:
    return [SessionIdentity(*v) for v in values or ()]


_MATCH_SQL = f"""
SELECT m.id AS match_id, m.stage, m.method, m.score, m.purchase_time,
       {CLICK_COLUMNS}, {_identities_of("m.tenant_id", "c.session_id")} AS identities
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
        identities=_identities(row["identities"]),
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
SELECT (SELECT id FROM saved) AS id, {_identities_of("$1", "$9")} AS identities
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
            _identities(row["identities"]),
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


_SESSION_IDENTITIES_SQL = f"SELECT {_identities_of('$1', '$2')}"


async def session_identities(
    conn: Connection, tenant_id: str, session_id: str
) -> list[SessionIdentity]:
    identities = await conn.fetchval(_SESSION_IDENTITIES_SQL, tenant_id, session_id)
    return _identities(identities)


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
    return bool(row["registered"])


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
