"""The monitor's round: expire undelivered events past Meta's limit (and tell the console), and
tell whether Meta looks down for everyone (many destinations failing on Meta's side at once)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from trackai_dispatcher.domain.model import EXPIRY_MARGIN_S, META_MAX_AGE_S
from trackai_dispatcher.service_layer.batch import TOO_OLD_DETAIL
from trackai_dispatcher.service_layer.metrics import EXPIRED
from trackai_dispatcher.service_layer.ports import (
    HealthCounts,
    HealthStore,
    Notifier,
    StatusUpdate,
    UnclosedBreaker,
)
from trackai_kit.logging import get_logger

log = get_logger(__name__)


def expiry_horizon(now: datetime) -> datetime:
    """Undelivered events older than this are expired (Meta's limit less the trip's margin)."""
    return now - timedelta(seconds=META_MAX_AGE_S - EXPIRY_MARGIN_S)


class Monitor:
    """One round per :meth:`check`; the last round's figures stay readable for the gauges."""

    def __init__(
        self,
        store: HealthStore,
        notifier: Notifier,
        *,
        outage_destinations: int,
        outage_window_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._notifier = notifier
        self._threshold = outage_destinations
        self._window_s = outage_window_s
        self._clock = clock
        self.failing = 0
        self.outage = False
        #: Last round's counts; None until the first round.
        self.counts: HealthCounts | None = None
        #: Destinations whose breaker is not closed, and its state (last round).
        self.breakers: list[UnclosedBreaker] = []

    async def check(self) -> None:
        now = self._clock()
        expired = await self._store.expire_overdue(expiry_horizon(now), TOO_OLD_DETAIL)
        self.failing = await self._store.failing_destinations(self._window_s)
        self.counts = await self._store.health_counts()
        self.breakers = await self._store.unclosed_breakers()
        if expired:
            EXPIRED.add(len(expired))
            log.warning("undelivered events expired", count=len(expired))
            await self._notifier.statuses(
                [
                    StatusUpdate(e.tenant_id, e.event_id, "expired", "event_too_old", now)
                    for e in expired
                ]
            )
        outage = self.failing >= self._threshold
        if outage and not self.outage:
            log.error(
                "META-WIDE OUTAGE suspected: Meta-side failures across many destinations",
                failing_destinations=self.failing,
                window_s=self._window_s,
            )
        elif self.outage and not outage:
            log.info("Meta-wide outage over", failing_destinations=self.failing)
        self.outage = outage
