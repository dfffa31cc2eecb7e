"""asyncpg access to the sessions a purchase may match: stages 1 and 2 in one statement, stage 3's
candidates with their value counts, and the tenant's traffic sample.

The queries are written for their indexes (docs/schema/matcher.md lists which serves which).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

import asyncpg

from trackai_matcher.adapters.sessions import CLICK_COLUMNS, click_from_row
from trackai_matcher.domain.model import Click, Purchase
from trackai_matcher.domain.scoring import ValueCounts
from trackai_matcher.service_layer.ports import Connection, ProbabilisticCandidates

#: Sessions retrieved per candidate source in stage 3, and the cap on value counts (a value
#: shared by more sessions than this weighs next to nothing anyway).
CANDIDATES_PER_SOURCE = 100
COUNT_CAP = 2000
#: A session may go on after the purchase (thank-you page): its last hit can be later.
AFTER_PURCHASE = dt.timedelta(hours=1)
SEMI_WINDOW = dt.timedelta(days=7)


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
