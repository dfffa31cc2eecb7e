"""The webhook use case with in-memory ports: the order of its checks, and its answers when the
registry or the database is away. No network, no database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest

from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai_ingestion.domain.gateways import WebhookRequest
from trackai_ingestion.domain.model import Conversion
from trackai_ingestion.service_layer.ports import (
    Accepted,
    RateDecision,
    Receipt,
    RegistryUnavailable,
    StorageUnavailable,
)
from trackai_ingestion.service_layer.webhooks import WebhookService

from ..conftest import KIWIFY_KEY, fixture_bytes, hmac_hex

TENANT = str(uuid.uuid4())


@dataclass
class Calls:
    """What each port saw, in order across ports."""

    log: list[str] = field(default_factory=list)


@dataclass
class Tenants:
    calls: Calls
    configs: dict[str, prov.WebhookConfig]
    down: bool = False

    async def get(self, tenant_ref: str) -> prov.WebhookConfig | None:
        self.calls.log.append("registry")
        if self.down:
            raise RegistryUnavailable("UNAVAILABLE: connection refused")
        return self.configs.get(tenant_ref)


@dataclass
class Limiter:
    calls: Calls
    allowed: bool = True

    async def acquire(self, key: str, limit_per_minute: int) -> RateDecision:
        self.calls.log.append(f"limit {key} {limit_per_minute}")
        return RateDecision(self.allowed, retry_after_s=0 if self.allowed else 7)


@dataclass
class Store:
    calls: Calls
    down: bool = False
    receipts: list[Receipt] = field(default_factory=list)

    async def accept(
        self, tenant_id: uuid.UUID, conversion: Conversion, receipt: Receipt
    ) -> Accepted:
        self.calls.log.append("accept")
        if self.down:
            raise StorageUnavailable("PostgresConnectionError")
        self.receipts.append(receipt)
        return Accepted(uuid.uuid4(), duplicate=False)

    async def record(self, tenant_id: uuid.UUID, receipt: Receipt) -> None:
        self.calls.log.append(f"record {receipt.outcome}")
        if self.down:
            raise StorageUnavailable("TimeoutError")
        self.receipts.append(receipt)


@dataclass
class Refusals:
    calls: Calls

    async def record(self, tenant_id: uuid.UUID, gateway: str, credential: str) -> None:
        self.calls.log.append(f"refusal {gateway} {credential}")


@dataclass
class Service:
    calls: Calls
    tenants: Tenants
    limiter: Limiter
    store: Store
    service: WebhookService


@pytest.fixture
def svc() -> Service:
    calls = Calls()
    config = prov.WebhookConfig(
        view=prov.TenantView(tenant=prov.Tenant(id=TENANT, rate_limit_per_minute=120)),
        gateways=[prov.GatewayCredential(gateway="kiwify", secret=KIWIFY_KEY)],
    )
    tenants = Tenants(calls, {TENANT: config})
    limiter, store = Limiter(calls), Store(calls)
    service = WebhookService(
        tenants, limiter, store, default_rate_limit=60, auth_failures=Refusals(calls)
    )
    return Service(calls, tenants, limiter, store, service)


def kiwify(raw: bytes | None = None, *, key: str = KIWIFY_KEY) -> WebhookRequest:
    raw = fixture_bytes("kiwify-3.json") if raw is None else raw
    return WebhookRequest(
        raw, {"content-type": "application/json"}, [("signature", hmac_hex("sha1", key, raw))]
    )


async def test_a_genuine_sale_is_checked_then_limited_then_stored(svc: Service) -> None:
    answer = await svc.service.receive("kiwify", TENANT, kiwify())
    assert answer.status == 200 and answer.body["status"] == "accepted"
    assert svc.calls.log == ["registry", f"limit {TENANT} 120", "accept"]


async def test_a_refused_credential_never_counts_against_the_tenants_rate(svc: Service) -> None:
    answer = await svc.service.receive("kiwify", TENANT, kiwify(key="wrong-key"))
    assert answer.status == 401 and answer.body["credential"] == "kiwify_signature"
    # No rate budget used, nothing stored: only the mismatch is noted for the setup agent.
    assert svc.calls.log == ["registry", "refusal kiwify kiwify_signature"]


async def test_an_unknown_gateway_is_refused_before_the_registry_is_asked(svc: Service) -> None:
    answer = await svc.service.receive("paypal", TENANT, kiwify())
    assert answer.status == 404 and answer.body["error"] == "unknown_gateway"
    assert svc.calls.log == []


async def test_an_unknown_tenant_is_404_and_uses_nothing(svc: Service) -> None:
    answer = await svc.service.receive("kiwify", str(uuid.uuid4()), kiwify())
    assert answer.status == 404 and answer.body["error"] == "unknown_tenant"
    assert svc.calls.log == ["registry"]


async def test_the_registry_down_asks_the_gateway_to_retry(svc: Service) -> None:
    svc.tenants.down = True
    answer = await svc.service.receive("kiwify", TENANT, kiwify())
    assert answer.status == 503 and answer.body["error"] == "tenant_registry_unavailable"
    assert answer.headers == {"Retry-After": "30"}
    assert svc.calls.log == ["registry"]  # not authenticated, so not limited or stored


async def test_the_database_down_asks_the_gateway_to_retry(svc: Service) -> None:
    svc.store.down = True
    answer = await svc.service.receive("kiwify", TENANT, kiwify())
    assert answer.status == 503 and answer.body["error"] == "storage_unavailable"
    assert answer.headers == {"Retry-After": "30"}


async def test_over_the_rate_is_429_after_authentication_and_stores_nothing(svc: Service) -> None:
    svc.limiter.allowed = False
    answer = await svc.service.receive("kiwify", TENANT, kiwify())
    assert answer.status == 429 and answer.headers == {"Retry-After": "7"}
    assert svc.calls.log == ["registry", f"limit {TENANT} 120"]


async def test_an_authenticated_body_that_is_not_json_is_kept_as_a_receipt(svc: Service) -> None:
    answer = await svc.service.receive("kiwify", TENANT, kiwify(b"not json"))
    assert answer.status == 400 and answer.body["error"] == "malformed_body"
    assert svc.calls.log[-1] == "record invalid"
    (receipt,) = svc.store.receipts
    assert receipt.http_status == 400 and receipt.body_redacted == {}
