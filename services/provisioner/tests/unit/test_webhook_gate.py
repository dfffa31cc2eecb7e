"""The webhook lock's decision, with an in-memory record of ingestion's answers: no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from trackai_provisioner.domain.provisioning import DependencyUnavailable, SetupLocked
from trackai_provisioner.domain.tenants import Tenant
from trackai_provisioner.service_layer.ports import GatewayActivity
from trackai_provisioner.service_layer.webhook_gate import WebhookGate

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


class Record:
    def __init__(self, *activity: GatewayActivity, down: bool = False) -> None:
        self.activity_ = list(activity)
        self.down = down
        self.asked: list[tuple[uuid.UUID, datetime]] = []

    async def activity(self, tenant_id: uuid.UUID, since: datetime) -> Sequence[GatewayActivity]:
        self.asked.append((tenant_id, since))
        if self.down:
            raise DependencyUnavailable("ingestion did not answer")
        return self.activity_


def tenant(*gateways: str, created: datetime = NOW - timedelta(days=2)) -> Tenant:
    return Tenant(uuid.uuid4(), "loja", "Loja", None, [], created, list(gateways))


async def test_a_verified_webhook_from_a_configured_gateway_opens_it() -> None:
    record = Record(GatewayActivity("kiwify", 1, {}))
    shop = tenant("kiwify")
    await WebhookGate(record, clock=lambda: NOW).require_verified(shop)
    assert record.asked == [(shop.id, shop.created_at)]


async def test_nothing_arrived_locks_with_the_webhook_path() -> None:
    shop = tenant("hotmart", "kiwify")
    with pytest.raises(SetupLocked) as locked:
        await WebhookGate(Record(), clock=lambda: NOW).require_verified(shop)
    message = str(locked.value)
    assert f"/api/v1/webhooks/kiwify/{shop.id}" in message
    assert f"/api/v1/webhooks/hotmart/{shop.id}" in message
    assert "test webhook" in message


async def test_a_webhook_of_a_gateway_the_tenant_does_not_use_does_not_count() -> None:
    with pytest.raises(SetupLocked):
        await WebhookGate(
            Record(GatewayActivity("eduzz", 3, {})), clock=lambda: NOW
        ).require_verified(tenant("kiwify"))


async def test_refused_requests_name_the_credential_that_did_not_match() -> None:
    record = Record(GatewayActivity("kiwify", 0, {"kiwify_signature": 2}))
    with pytest.raises(SetupLocked, match="kiwify \\(kiwify_signature\\)"):
        await WebhookGate(record, clock=lambda: NOW).require_verified(tenant("kiwify"))


async def test_no_gateway_configured_locks_without_asking() -> None:
    record = Record(GatewayActivity("kiwify", 1, {}))
    with pytest.raises(SetupLocked, match="set-gateway"):
        await WebhookGate(record, clock=lambda: NOW).require_verified(tenant())
    assert record.asked == []


async def test_unknown_is_not_verified() -> None:
    with pytest.raises(DependencyUnavailable):
        await WebhookGate(Record(down=True), clock=lambda: NOW).require_verified(tenant("kiwify"))


async def test_an_old_tenant_is_asked_about_the_last_30_days() -> None:
    record = Record(GatewayActivity("kiwify", 1, {}))
    await WebhookGate(record, clock=lambda: NOW).require_verified(
        tenant("kiwify", created=NOW - timedelta(days=400))
    )
    assert record.asked[0][1] == NOW - timedelta(days=30)
