"""The operators' tenant list with each tenant's health at a glance: delivery to Meta (breaker
and dead letters), EMQ over 7 days (the console's history), the last webhook and where setup
stands. Sellers never reach it (NotVisible, a 404)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from trackai_console.domain.accounts import User
from trackai_console.domain.health import DestinationHealth
from trackai_console.domain.quality import EMQ_THRESHOLD
from trackai_console.domain.wizard import STEPS, WizardRecord
from trackai_console.service_layer.events import NotVisible
from trackai_console.service_layer.ports import (
    DeliveryHealth,
    EmqHistory,
    EventSource,
    SourceUnavailable,
    TenantSummary,
    WebhookActivity,
    WizardStore,
)
from trackai_console.service_layer.quality import DAYS

PAGE_SIZE = 50
#: Ingestion keeps webhook activity this long; older than that reads as "none".
WEBHOOK_LOOKBACK = timedelta(days=30)
#: Concurrent webhook-activity reads per page (one per tenant: ingestion has no bulk read).
WEBHOOK_READS = 10


@dataclass(frozen=True)
class TenantHealth:
    tenant: TenantSummary
    destinations: list[DestinationHealth]
    emq: tuple[int, float] | None  # (events, average) over 7 days
    last_webhook_at: datetime | None
    #: Ingestion did not answer for this tenant.
    webhook_unknown: bool
    setup: WizardRecord | None

    @property
    def dead_letters(self) -> int:
        return sum(d.dead_letters for d in self.destinations)

    @property
    def paused(self) -> list[DestinationHealth]:
        return [d for d in self.destinations if not d.delivering]

    @property
    def emq_low(self) -> bool:
        return self.emq is not None and self.emq[1] < EMQ_THRESHOLD

    @property
    def setup_label(self) -> str:
        if self.setup is not None and self.setup.approved_at is not None:
            return "Publicado"
        if self.setup is not None:
            return f"Parou em “{STEPS.get(self.setup.step, self.setup.step)}”"
        if self.tenant.meta_configured and self.tenant.gateways:
            return "Configurado fora do assistente"
        return "Não iniciado"

    @property
    def needs_action(self) -> bool:
        return bool(self.paused or self.dead_letters or self.emq_low)


@dataclass(frozen=True)
class TenantHealthPage:
    rows: list[TenantHealth]
    next_token: str


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TenantHealthList:
    def __init__(
        self,
        source: EventSource,
        delivery: DeliveryHealth,
        webhooks: WebhookActivity,
        history: EmqHistory,
        wizards: WizardStore,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._source = source
        self._delivery = delivery
        self._webhooks = webhooks
        self._history = history
        self._wizards = wizards
        self._clock = clock

    async def page(self, user: User, page_token: str = "") -> TenantHealthPage:
        if not user.is_operator:
            raise NotVisible("tenant health")
        now = self._clock()
        tenants = await self._source.tenant_page(page_token, PAGE_SIZE)
        ids = [t.id for t in tenants.tenants]
        # Every tenant's destinations in one read, EMQ and setup for the page in one query each.
        destinations, emq, wizards, webhooks = await asyncio.gather(
            self._delivery.destinations(None),
            self._history.averages(ids, (now - timedelta(days=DAYS - 1)).date()),
            self._wizards.load_many([uuid.UUID(i) for i in ids]),
            self._last_webhooks(ids, now - WEBHOOK_LOOKBACK),
        )
        by_tenant: dict[str, list[DestinationHealth]] = {}
        for destination in destinations:
            by_tenant.setdefault(destination.tenant_id, []).append(destination)
        rows = [
            TenantHealth(
                tenant=t,
                destinations=by_tenant.get(t.id, []),
                emq=emq.get(t.id),
                last_webhook_at=webhooks.get(t.id),
                webhook_unknown=t.id not in webhooks,
                setup=wizards.get(uuid.UUID(t.id)),
            )
            for t in tenants.tenants
        ]
        return TenantHealthPage(rows, tenants.next_token)

    async def _last_webhooks(
        self, tenant_ids: list[str], since: datetime
    ) -> dict[str, datetime | None]:
        """Tenant → last webhook (None: none in the look-back); absent when ingestion failed."""
        limit = asyncio.Semaphore(WEBHOOK_READS)

        async def one(tenant_id: str) -> tuple[str, datetime | None] | None:
            async with limit:
                try:
                    report = await self._webhooks.since(tenant_id, since)
                except SourceUnavailable:
                    return None
                return tenant_id, report.last_received_at

        found = await asyncio.gather(*(one(t) for t in tenant_ids))
        return dict(f for f in found if f is not None)
