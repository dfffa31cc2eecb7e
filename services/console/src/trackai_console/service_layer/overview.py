"""The overview page's use case: today and the last 7 days in numbers, each destination's
delivery to Meta, and the banners of what needs the seller's action (each with its concrete
fix): a breaker open, webhooks refused in the last hour, the dead-letter queue, EMQ below 6 and
missing customer information."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from trackai_console.domain.health import (
    Banner,
    DestinationHealth,
    breaker_banner,
    coverage_banner,
    dead_letters_banner,
    refusal_banner,
)
from trackai_console.domain.quality import EMQ_THRESHOLD, QualityReport
from trackai_console.service_layer.dead_letters import DeadLetters
from trackai_console.service_layer.ports import DeliveryHealth, SourceUnavailable, WebhookActivity
from trackai_console.service_layer.quality import Quality

#: Webhooks refused for a wrong credential within this window raise a banner.
REFUSALS_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Overview:
    report: QualityReport
    dead_letters: int
    banners: list[Banner] = field(default_factory=list)
    destinations: list[DestinationHealth] = field(default_factory=list)
    #: A service did not answer: the numbers are missing, the page still opens.
    unavailable: bool = False

    @property
    def today(self) -> int:
        return self.report.days[-1].conversions if self.report.days else 0


def emq_banner(report: QualityReport) -> Banner | None:
    average = report.average
    if average is None or average >= EMQ_THRESHOLD:
        return None
    return Banner(
        f"A qualidade da correspondência (EMQ) está em {average:.1f}".replace(".", ",")
        + f", abaixo de {EMQ_THRESHOLD:.1f}".replace(".", ",")
        + ".",
        "Envie mais dados do comprador e instale o script em todas as páginas.",
        "/emq",
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class BuildOverview:
    def __init__(
        self,
        quality: Quality,
        dead_letters: DeadLetters,
        delivery: DeliveryHealth,
        webhooks: WebhookActivity,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._quality = quality
        self._dead = dead_letters
        self._delivery = delivery
        self._webhooks = webhooks
        self._clock = clock

    async def __call__(self, tenant_id: str) -> Overview:
        now = self._clock()
        try:
            report, dead, destinations, webhooks, coverage = await asyncio.gather(
                self._quality.last_days(tenant_id),
                self._dead.page(tenant_id, reason="", period="tudo"),
                self._delivery.destinations(tenant_id),
                self._webhooks.since(tenant_id, now - REFUSALS_WINDOW),
                self._quality.coverage(tenant_id),
            )
        except SourceUnavailable:
            return Overview(QualityReport([]), 0, unavailable=True)
        # Most urgent first: sales not reaching Meta at all, then sales not reaching us, then
        # what is stuck, then quality.
        banners = [b for d in destinations if (b := breaker_banner(d)) is not None]
        banners += [refusal_banner(r) for r in webhooks.refusals]
        candidates = (
            dead_letters_banner(len(dead.dead_letters), bool(dead.next_token)),
            emq_banner(report),
            coverage_banner(coverage),
        )
        banners += [b for b in candidates if b is not None]
        return Overview(report, len(dead.dead_letters), banners, destinations)
