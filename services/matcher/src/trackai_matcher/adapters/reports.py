"""Read queries behind MatcherService: match summaries (export, review), one explanation, and
the per-day statistics (the service layer's ``MatchReports``, on the pool)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import asyncpg

from trackai_kit.postgres import Params
from trackai_matcher.domain.model import Stage
from trackai_matcher.service_layer.ports import DayStats, PageFilter, SummaryRow

_SELECT = """
SELECT d.conversion_id, d.order_id, d.gateway, d.event_id, d.event_name,
       coalesce(m.stage, 'none') AS stage, m.session_id, m.click_id, m.score, m.runner_up_score,
       d.emq, coalesce(d.event_time, d.registered_at) AS event_time, m.matched_at,
       coalesce(m.evidence, '{}'::jsonb) AS evidence
FROM matcher.dedupe_registry d LEFT JOIN matcher.matches m ON m.id = d.match_id
"""


# The event a conversion registered, else one of the order it was the first message of: an OR
# of two columns, served as a BitmapOr of dedupe_registry_conversion_idx and
# dedupe_registry_match_idx (without the latter, every registry row of the tenant is read).
BY_CONVERSION_ID_SQL = (
    _SELECT  # noqa: S608 - constant SQL fragments, values are bound parameters
    + """
    WHERE d.tenant_id = $1 AND (d.conversion_id = $2 OR d.match_id = (
        SELECT id FROM matcher.matches WHERE conversion_id = $2 AND tenant_id = $1 LIMIT 1))
    ORDER BY (d.conversion_id = $2) DESC NULLS LAST, d.registered_at DESC LIMIT 1
    """
)
#: ``BY_CONVERSION_ID_SQL`` for a page of conversions in one statement (the events page).
BY_CONVERSION_IDS_SQL = (
    """
    SELECT c.requested, s.* FROM unnest($2::uuid[]) AS c(requested)
    CROSS JOIN LATERAL ("""  # noqa: S608 - constant SQL fragments, values are bound parameters
    + _SELECT
    + """
        WHERE d.tenant_id = $1 AND (d.conversion_id = c.requested OR d.match_id = (
            SELECT id FROM matcher.matches
            WHERE conversion_id = c.requested AND tenant_id = $1 LIMIT 1))
        ORDER BY (d.conversion_id = c.requested) DESC NULLS LAST, d.registered_at DESC
        LIMIT 1
    ) s
    """
)


def list_summaries_query(f: PageFilter) -> tuple[str, list[object]]:
    """A page of a tenant's events, newest conversion first, keyset-paged on (event_time,
    event_id) along dedupe_registry_tenant_event_time_idx: the statement and its arguments.
    Only the filters given are written, and the limit as a number: with ``$n IS NULL OR ...``
    filters and ``LIMIT $n`` the generic plan a cached statement switches to misjudges how many
    rows a page needs (see the dispatcher's ``list_states_query``)."""
    params = Params(f.tenant_id)
    arg = params.bind
    conditions = ["d.tenant_id = $1"]
    if f.start is not None:
        conditions.append(f"d.event_time >= {arg(f.start)}")
    if f.end is not None:
        conditions.append(f"d.event_time < {arg(f.end)}")
    if f.stages:
        stages = arg([s.value for s in f.stages])
        conditions.append(f"coalesce(m.stage, 'none') = ANY({stages}::text[])")
    if f.max_margin is not None:
        conditions.append(
            "(coalesce(m.stage, 'none') <> 'probabilistic' "
            f"OR m.score - m.runner_up_score < {arg(f.max_margin)})"
        )
    if f.gateway is not None:
        conditions.append(f"d.gateway = {arg(f.gateway)}")
    if f.funnel_id is not None:
        conditions.append(f"d.funnel_id = {arg(f.funnel_id)}::uuid")
    if f.after is not None:
        conditions.append(
            f"(d.event_time, d.event_id) < ({arg(f.after[0])}, {arg(f.after[1])}::bpchar)"
        )
    sql = (
        _SELECT
        + f" WHERE {' AND '.join(conditions)}"
        + f" ORDER BY d.event_time DESC, d.event_id DESC LIMIT {int(f.limit)}"
    )
    return sql, params.values


def _row(r: asyncpg.Record) -> SummaryRow:
    return SummaryRow(
        conversion_id=str(r["conversion_id"]) if r["conversion_id"] else None,
        order_id=r["order_id"],
        gateway=r["gateway"],
        event_id=r["event_id"],
        event_name=r["event_name"],
        stage=Stage(r["stage"]),
        session_id=r["session_id"],
        click_id=r["click_id"],
        score=r["score"],
        runner_up_score=r["runner_up_score"],
        emq=float(r["emq"]) if r["emq"] is not None else None,
        event_time=r["event_time"],
        matched_at=r["matched_at"],
        evidence=r["evidence"] or {},
    )


class PostgresMatchReports:
    """``MatchReports`` on the service's pool (each read is one statement, no transaction)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def list_summaries(self, f: PageFilter) -> list[SummaryRow]:
        """Newest conversion first, keyset-paged on (event_time, event_id)."""
        sql, args = list_summaries_query(f)
        return [_row(r) for r in await self._pool.fetch(sql, *args)]

    async def by_event_id(self, tenant_id: str, event_id: str) -> SummaryRow | None:
        row = await self._pool.fetchrow(
            _SELECT + " WHERE d.tenant_id = $1 AND d.event_id = $2", tenant_id, event_id
        )
        return _row(row) if row is not None else None

    async def by_conversion_id(self, tenant_id: str, conversion_id: str) -> SummaryRow | None:
        """The event registered by that conversion message, else an event of the order it was
        the first message of (a pending pix whose Purchase came with the approval)."""
        row = await self._pool.fetchrow(BY_CONVERSION_ID_SQL, tenant_id, conversion_id)
        return _row(row) if row is not None else None

    async def by_conversion_ids(
        self, tenant_id: str, conversion_ids: Sequence[str]
    ) -> list[tuple[str, SummaryRow]]:
        """``by_conversion_id`` for several conversions in one statement: (requested id, row)."""
        rows = await self._pool.fetch(BY_CONVERSION_IDS_SQL, tenant_id, list(conversion_ids))
        return [(str(r["requested"]), _row(r)) for r in rows]

    async def daily_stats(
        self, tenant_id: str, first: dt.date, last: dt.date
    ) -> dict[dt.date, DayStats]:
        rows = await self._pool.fetch(
            """
            SELECT day, conversions, deterministic, semi, probabilistic, unmatched,
                   CASE WHEN emq_events > 0 THEN emq_sum / emq_events ELSE 0 END AS emq_average,
                   low_emq_events
            FROM matcher.match_daily_stats WHERE tenant_id = $1 AND day BETWEEN $2 AND $3
            """,
            tenant_id,
            first,
            last,
        )
        return {
            r["day"]: DayStats(
                r["day"],
                r["conversions"],
                r["deterministic"],
                r["semi"],
                r["probabilistic"],
                r["unmatched"],
                float(r["emq_average"]),
                r["low_emq_events"],
            )
            for r in rows
        }
