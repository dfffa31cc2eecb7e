"""PostgreSQL store of the console's per-day EMQ history (``console.emq_daily``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date

import asyncpg

from trackai_console.domain.quality import DayQuality


class PostgresEmqHistory:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def save(self, tenant_id: str, days: Sequence[DayQuality]) -> None:
        # A snapshot of the matcher's figures: repeated by every replica and every round, the
        # same values land (no increments to double-count).
        await self._pool.executemany(
            """
            INSERT INTO console.emq_daily AS d (tenant_id, day, events, emq_sum, below_threshold,
                matched_deterministic, matched_semi, matched_probabilistic, unmatched)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            ON CONFLICT (tenant_id, day) DO UPDATE SET
                events = EXCLUDED.events, emq_sum = EXCLUDED.emq_sum,
                below_threshold = EXCLUDED.below_threshold,
                matched_deterministic = EXCLUDED.matched_deterministic,
                matched_semi = EXCLUDED.matched_semi,
                matched_probabilistic = EXCLUDED.matched_probabilistic,
                unmatched = EXCLUDED.unmatched, updated_at = now()
            WHERE (d.events, d.emq_sum, d.below_threshold, d.matched_deterministic,
                   d.matched_semi, d.matched_probabilistic, d.unmatched)
               IS DISTINCT FROM (EXCLUDED.events, EXCLUDED.emq_sum, EXCLUDED.below_threshold,
                   EXCLUDED.matched_deterministic, EXCLUDED.matched_semi,
                   EXCLUDED.matched_probabilistic, EXCLUDED.unmatched)
            """,
            [
                (
                    uuid.UUID(tenant_id),
                    date.fromisoformat(d.day),
                    d.conversions,
                    round(d.emq_average * d.conversions, 2),
                    d.below_threshold,
                    d.deterministic,
                    d.semi,
                    d.probabilistic,
                    d.unmatched,
                )
                for d in days
            ],
        )

    async def days(self, tenant_id: str, start: date, end: date) -> list[DayQuality]:
        """The stored days in [start, end], oldest first (days never stored are absent)."""
        rows = await self._pool.fetch(
            """
            SELECT day, events, emq_sum, below_threshold, matched_deterministic, matched_semi,
                   matched_probabilistic, unmatched
            FROM console.emq_daily WHERE tenant_id = $1 AND day BETWEEN $2 AND $3 ORDER BY day
            """,
            uuid.UUID(tenant_id),
            start,
            end,
        )
        return [
            DayQuality(
                day=r["day"].isoformat(),
                conversions=r["events"],
                emq_average=float(r["emq_sum"]) / r["events"] if r["events"] else 0.0,
                below_threshold=r["below_threshold"],
                deterministic=r["matched_deterministic"],
                semi=r["matched_semi"],
                probabilistic=r["matched_probabilistic"],
                unmatched=r["unmatched"],
            )
            for r in rows
        ]

    async def averages(
        self, tenant_ids: Sequence[str], start: date
    ) -> dict[str, tuple[int, float]]:
        rows = await self._pool.fetch(
            """
            SELECT tenant_id, sum(events)::int AS events, sum(emq_sum) AS emq_sum
            FROM console.emq_daily
            WHERE tenant_id = ANY($1::uuid[]) AND day >= $2 AND events > 0
            GROUP BY tenant_id
            """,
            [uuid.UUID(t) for t in tenant_ids],
            start,
        )
        return {str(r["tenant_id"]): (r["events"], float(r["emq_sum"]) / r["events"]) for r in rows}
