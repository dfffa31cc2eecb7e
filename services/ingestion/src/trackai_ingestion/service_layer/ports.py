"""What ingestion's use cases need from the outside: the tenant registry, the rate limiters, the
conversion and hit stores, the refused-credential log and the receipt counts, as protocols with
their value types. Adapters implement them and translate their technology's failures into the
two exceptions below; bootstrap wires them; the unit tests use in-memory doubles.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai_ingestion.domain.collect import BrowserHit, CollectTenant
from trackai_ingestion.domain.model import CanonicalStatus, Conversion


class RegistryUnavailable(RuntimeError):
    """The tenant registry cannot answer now and nothing usable is cached: ask to retry."""


class StorageUnavailable(RuntimeError):
    """The database cannot take the write now (connection lost, pool exhausted): ask to retry."""


@dataclass(frozen=True)
class Receipt:
    """What we record about one webhook (never the raw body: only its hash and a redacted copy)."""

    received_at: datetime
    gateway: str
    outcome: str
    http_status: int
    body_sha256: str
    body_redacted: dict[str, Any]
    headers: dict[str, str]
    content_type: str | None
    reason: str | None = None
    order_id: str | None = None


@dataclass(frozen=True)
class Accepted:
    conversion_id: uuid.UUID
    duplicate: bool


@dataclass(frozen=True)
class StoredConversion:
    id: uuid.UUID
    tenant_id: uuid.UUID
    received_at: datetime
    conversion: Conversion


@dataclass
class GatewayActivity:
    gateway: str
    by_outcome: dict[str, int] = field(default_factory=dict)
    last_received_at: datetime | None = None

    @property
    def received(self) -> int:
        return sum(self.by_outcome.values())


@dataclass(frozen=True)
class CredentialMismatch:
    gateway: str
    credential: str
    count: int
    last_at: datetime


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    #: Seconds until a request would be allowed (whole seconds, for ``Retry-After``).
    retry_after_s: int = 0
    remaining: int = 0
    #: True when Redis did not answer and the request was let through.
    degraded: bool = False
    #: Refused: the position (0-based) of the first of the request's keys without room.
    refused_by: int | None = None


class TenantConfigs(Protocol):
    """Each tenant's webhook configuration (its gateway secrets), by id; None when unknown."""

    async def get(self, tenant_ref: str) -> prov.WebhookConfig | None: ...


class TenantDirectory(Protocol):
    """The collect endpoint's view of a tenant, by id or slug; None when unknown."""

    async def get(self, tenant_ref: str) -> CollectTenant | None: ...


class RateLimiter(Protocol):
    async def acquire(self, key: str, limit_per_minute: int) -> RateDecision: ...


class MultiRateLimiter(Protocol):
    """Several keys decided in one call, all or nothing (``RateDecision.refused_by`` names the
    first key without room)."""

    async def acquire_all(self, limits: Sequence[tuple[str, int]]) -> RateDecision: ...


class AuthFailureRecorder(Protocol):
    async def record(self, tenant_id: uuid.UUID, gateway: str, credential: str) -> None: ...


class AuthFailureLog(AuthFailureRecorder, Protocol):
    async def since(self, tenant_id: uuid.UUID, since: datetime) -> list[CredentialMismatch]: ...


class ConversionWriter(Protocol):
    """Durable webhook writes; raise StorageUnavailable when the database cannot take them."""

    async def accept(
        self, tenant_id: uuid.UUID, conversion: Conversion, receipt: Receipt
    ) -> Accepted: ...

    async def record(self, tenant_id: uuid.UUID, receipt: Receipt) -> None: ...


class ConversionReader(Protocol):
    async def get(
        self, tenant_id: uuid.UUID, conversion_id: uuid.UUID
    ) -> StoredConversion | None: ...

    async def get_many(
        self, tenant_id: uuid.UUID, conversion_ids: Sequence[uuid.UUID]
    ) -> list[StoredConversion]:
        """The tenant's conversions among ``conversion_ids``, in no particular order."""
        ...

    async def list(
        self,
        tenant_id: uuid.UUID,
        *,
        statuses: Sequence[CanonicalStatus],
        start: datetime | None,
        end: datetime | None,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None,
        gateway: str | None,
        order_id: str | None,
        funnel_id: uuid.UUID | None,
    ) -> list[StoredConversion]: ...


class ReceiptCounts(Protocol):
    async def since(self, tenant_id: uuid.UUID, since: datetime) -> list[GatewayActivity]: ...


class HitWriter(Protocol):
    """Stores a browser hit in ``ingestion.events`` with its ``IngestEvent`` message, once per
    (tenant, kind, event_id): the stored row's id, or None for a duplicate."""

    async def record(self, hit: BrowserHit, received_at: datetime) -> str | None: ...
