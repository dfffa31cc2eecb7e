"""asyncpg access to the matcher's sessions: hits folded into ``matcher.clicks`` and
``matcher.identities``, the click columns every stage query reads, and a session's identities.

Every function takes the caller's connection so the use case decides the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from trackai_kit.pii import is_sha256_hex
from trackai_matcher.domain.model import Click, Hit
from trackai_matcher.domain.useragent import UaTraits
from trackai_matcher.service_layer.ports import Connection, SessionIdentity

#: Columns of a click as :func:`click_from_row` reads them (``c`` is the clicks alias).
CLICK_COLUMNS = """c.id, c.session_id, c.first_seen_at, c.last_seen_at, c.fbclid, c.fbc, c.fbp,
    host(c.client_ip) AS client_ip, c.ip_prefix::text AS ip_network, c.user_agent,
    c.browser_family, c.os_family, c.device_type, c.landing_url,
    coalesce(c.utm->>'utm_campaign', '') AS campaign, c.funnel_id, c.visitor_id"""


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


#: The matched session's identities, most recent first, as an array of (email_hash, phone_hash,
#: external_id) records: read in the statement that reads or records the decision.
IDENTITIES_LIMIT = 3


def identities_of(tenant: str, session: str) -> str:
    return f"""array(SELECT (i.email_hash, i.phone_hash, i.external_id) FROM matcher.identities i
    WHERE i.tenant_id = {tenant} AND i.session_id = {session}
    ORDER BY i.last_seen_at DESC LIMIT {IDENTITIES_LIMIT})"""  # noqa: S608 - constant fragments


def identities_from(
    values: Sequence[tuple[str | None, str | None, str | None]] | None,
) -> list[SessionIdentity]:
    return [SessionIdentity(*v) for v in values or ()]


_SESSION_IDENTITIES_SQL = f"SELECT {identities_of('$1', '$2')}"


async def session_identities(
    conn: Connection, tenant_id: str, session_id: str
) -> list[SessionIdentity]:
    identities = await conn.fetchval(_SESSION_IDENTITIES_SQL, tenant_id, session_id)
    return identities_from(identities)
