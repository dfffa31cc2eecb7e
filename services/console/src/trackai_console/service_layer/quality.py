"""The EMQ page's use case: a tenant's last 7 days of Event Match Quality from the matcher."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from trackai_console.domain.ports import MatchStats
from trackai_console.domain.quality import QualityReport

DAYS = 7


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Quality:
    def __init__(self, stats: MatchStats, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._stats = stats
        self._clock = clock

    async def last_days(self, tenant_id: str) -> QualityReport:
        today = self._clock().date()
        start = today - timedelta(days=DAYS - 1)
        return QualityReport(
            await self._stats.daily(tenant_id, start.isoformat(), today.isoformat())
        )
