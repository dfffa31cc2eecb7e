"""The operators' tenant list over recording doubles: operators only, one read of every
destination for the page, EMQ and wizards for the page's tenants, a tenant whose webhook activity
ingestion could not answer marked unknown (not "none"), and the at-a-glance labels."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from trackai_console.domain.accounts import User
from trackai_console.domain.health import DestinationHealth
from trackai_console.domain.wizard import WizardRecord
from trackai_console.service_layer.events import NotVisible
from trackai_console.service_layer.ports import (
    SourceUnavailable,
    TenantPage,
    TenantSummary,
    WebhookReport,
)
from trackai_console.service_layer.tenant_health import WEBHOOK_LOOKBACK, TenantHealthList

NOW = datetime(2026, 12, 7, 15, tzinfo=UTC)
A, B, C = (str(uuid.UUID(int=n)) for n in (1, 2, 3))
OPERATOR = User(uuid.uuid4(), "operator", None, False, True, NOW)
SELLER = User(uuid.uuid4(), "seller", uuid.UUID(A), False, True, NOW)


def destination(tenant: str, breaker: str = "closed", dead: int = 0) -> DestinationHealth:
    return DestinationHealth(tenant, "1234567890", breaker, 0, 0, "", None, None, dead)


@dataclass
class Doubles:
    asked: list[Any] = field(default_factory=list)

    async def tenant_page(self, page_token: str, page_size: int) -> TenantPage:
        self.asked.append(("tenants", page_token, page_size))
        return TenantPage(
            [
                TenantSummary(A, "Loja A"),
                TenantSummary(B, "Loja B", gateways=("kiwify",), meta_configured=True),
                TenantSummary(C, "Loja C"),
            ],
            "next",
        )

    async def destinations(self, tenant_id: str | None) -> list[DestinationHealth]:
        self.asked.append(("destinations", tenant_id))
        return [destination(A, "open"), destination(A, dead=2), destination("other", dead=9)]

    async def averages(self, tenant_ids: Sequence[str], start: date) -> dict[str, Any]:
        self.asked.append(("averages", list(tenant_ids), start))
        return {A: (40, 7.2), B: (10, 4.5)}

    async def load_many(self, tenant_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, WizardRecord]:
        self.asked.append(("wizards", list(tenant_ids)))
        return {uuid.UUID(A): WizardRecord(uuid.UUID(A), step="meta", started_at=NOW)}

    async def since(self, tenant_id: str, since: datetime) -> WebhookReport:
        assert since == NOW - WEBHOOK_LOOKBACK
        if tenant_id == C:
            raise SourceUnavailable("UNAVAILABLE")
        return WebhookReport([], NOW - timedelta(hours=1) if tenant_id == A else None)


def health_list(doubles: Doubles) -> TenantHealthList:
    return TenantHealthList(
        doubles,  # type: ignore[arg-type]
        doubles,  # type: ignore[arg-type]
        doubles,
        doubles,  # type: ignore[arg-type]
        doubles,  # type: ignore[arg-type]
        clock=lambda: NOW,
    )


async def test_a_seller_never_reaches_the_tenant_list() -> None:
    doubles = Doubles()
    with pytest.raises(NotVisible):
        await health_list(doubles).page(SELLER)
    assert doubles.asked == []


async def test_each_tenant_at_a_glance_from_one_read_per_owner() -> None:
    doubles = Doubles()
    page = await health_list(doubles).page(OPERATOR, "token")
    a, b, c = page.rows
    assert page.next_token == "next"
    assert ("destinations", None) in doubles.asked  # every tenant's, once
    assert ("averages", [A, B, C], date(2026, 12, 1)) in doubles.asked  # the last 7 days
    assert ("wizards", [uuid.UUID(A), uuid.UUID(B), uuid.UUID(C)]) in doubles.asked

    assert (a.dead_letters, len(a.paused), a.needs_action) == (2, 1, True)
    assert a.last_webhook_at == NOW - timedelta(hours=1) and not a.webhook_unknown
    assert a.setup_label.startswith("Parou em")
    assert (b.emq_low, b.needs_action, b.last_webhook_at, b.webhook_unknown) == (
        True,
        True,
        None,
        False,
    )
    assert b.setup_label == "Configurado fora do assistente"
    # Ingestion did not answer for C: unknown, not "no webhook"; nothing else is wrong with it.
    assert (c.webhook_unknown, c.needs_action, c.setup_label) == (True, False, "Não iniciado")
    assert c.destinations == []
