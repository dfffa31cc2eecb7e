"""The EMQ page's use cases: a tenant's last 7 days of Event Match Quality from the matcher
(from the console's own history when the matcher does not answer), the coverage of each
customer-information parameter, and the job that keeps that
history (``emq_daily``) for every tenant."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta

from trackai_console.domain.health import Coverage
from trackai_console.domain.quality import DayQuality, QualityReport
from trackai_console.service_layer.ports import (
    DeliveryHealth,
    EmqHistory,
    MatchStats,
    SourceUnavailable,
    TenantSummary,
)
from trackai_kit.logging import get_logger

DAYS = 7
#: How long a tenant's parameter coverage is reused, and for how many tenants at most.
COVERAGE_TTL = timedelta(minutes=5)
COVERAGE_TENANTS = 10_000
log = get_logger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _fill(days: list[DayQuality], start: date, end: date) -> list[DayQuality]:
    """One entry per day in [start, end]; days without a stored row have no sales."""
    stored = {d.day: d for d in days}
    span = (end - start).days + 1
    return [
        stored.get(day, DayQuality(day, 0, 0.0, 0))
        for day in ((start + timedelta(days=i)).isoformat() for i in range(span))
    ]


class Quality:
    def __init__(
        self,
        stats: MatchStats,
        history: EmqHistory,
        delivery: DeliveryHealth,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._stats = stats
        self._history = history
        self._delivery = delivery
        self._clock = clock
        self._coverage: dict[str, tuple[datetime, Coverage]] = {}

    async def coverage(self, tenant_id: str, *, fresh: bool = False) -> Coverage:
        """Of the events sent (or to be sent) to Meta in the last 7 days, how many carried each
        customer-information parameter (the dispatcher's stored server events). Kept
        ``COVERAGE_TTL`` per tenant for the overview's banner (asked on every view, while the
        dispatcher counts a week of the tenant's events to answer and a 7-day share barely moves
        in minutes); ``fresh`` (the quality page) always asks, and renews what is kept."""
        now = self._clock()
        cached = self._coverage.get(tenant_id)
        if not fresh and cached is not None and now - cached[0] < COVERAGE_TTL:
            return cached[1]
        found = await self._delivery.coverage(tenant_id, now - timedelta(days=DAYS), now)
        if len(self._coverage) >= COVERAGE_TENANTS:
            # Oldest first (insertion order): the tenants not viewed for longest.
            self._coverage.pop(next(iter(self._coverage)))
        self._coverage.pop(tenant_id, None)
        self._coverage[tenant_id] = (now, found)
        return found

    async def last_days(self, tenant_id: str) -> QualityReport:
        today = self._clock().date()
        start = today - timedelta(days=DAYS - 1)
        try:
            days = await self._stats.daily(tenant_id, start.isoformat(), today.isoformat())
        except SourceUnavailable:
            # The history kept by `snapshot` (up to its last round) rather than an error page.
            stored = await self._history.days(tenant_id, start, today)
            return QualityReport(_fill(stored, start, today), from_history=True)
        return QualityReport(days)

    async def snapshot(self, tenants: Callable[[], Awaitable[list[TenantSummary]]]) -> int:
        """Copy yesterday's and today's figures of every tenant from the matcher into the
        history (yesterday again, so its last hour is not lost at midnight); returns how many
        tenants were stored."""
        today = self._clock().date()
        start = (today - timedelta(days=1)).isoformat()
        stored = 0
        for tenant in await tenants():
            try:
                days = await self._stats.daily(tenant.id, start, today.isoformat())
            except SourceUnavailable:
                log.warning("emq snapshot: matcher unavailable", tenant_id=tenant.id)
                return stored
            await self._history.save(tenant.id, days)
            stored += 1
        return stored

    async def keep_history(
        self,
        tenants: Callable[[], Awaitable[list[TenantSummary]]],
        every_s: float,
        stop: asyncio.Event,
    ) -> None:
        """The background loop: a snapshot every ``every_s`` seconds until ``stop``."""
        while not stop.is_set():
            try:
                stored = await self.snapshot(tenants)
                log.info("emq snapshot", tenants=stored)
            except SourceUnavailable:
                log.warning("emq snapshot: tenant list unavailable")
            except Exception:
                # The history is a convenience: a failed round (database, an unexpected answer)
                # must not stop the pages, which a crashed background task would.
                log.exception("emq snapshot failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
