"""What the provisioner's use cases need from the outside, as protocols: the providers (adapters
over the real APIs, official SDKs and httpx), the run store and the status outbox. Bootstrap wires
the adapters in; the unit tests use in-memory doubles.

Every ``find_*`` is the lookup that precedes a create; every ``delete_*`` answers normally when
the resource is already gone, so rollback can be repeated.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from trackai_kit.postgres import Connection
from trackai_provisioner.domain.provisioning import Resource, Run, RunStatus, StepRecord, StepStatus
from trackai_provisioner.domain.tenants import Funnel, Tenant

#: The store's connection: the use cases only open transactions on it and hand it back to the
#: repository, so a run's records and its StatusUpdate commit together.
Conn = Connection


class Database(Protocol):
    """The store's connection pool."""

    def acquire(self) -> AbstractAsyncContextManager[Conn]: ...


@dataclass(frozen=True)
class TokenInfo:
    is_valid: bool
    scopes: tuple[str, ...]
    expires_at: int
    error: str = ""


@dataclass(frozen=True)
class PixelInfo:
    id: str
    name: str
    is_unavailable: bool


@dataclass(frozen=True)
class TestEventResult:
    events_received: int
    fbtrace_id: str


class MetaPort(Protocol):
    async def debug_token(self, token: str) -> TokenInfo: ...

    async def get_pixel(self, pixel_id: str, token: str) -> PixelInfo: ...

    async def send_test_event(
        self, pixel_id: str, token: str, event: dict[str, Any], test_event_code: str
    ) -> TestEventResult: ...


@dataclass(frozen=True)
class GtmContainer:
    path: str  # accounts/{a}/containers/{c}
    container_id: str
    public_id: str  # GTM-XXXXXXX
    name: str
    usage_context: tuple[str, ...]


@dataclass(frozen=True)
class GtmEntity:
    """A workspace variable, trigger, tag or template."""

    path: str
    entity_id: str
    name: str
    body: dict[str, Any]


@dataclass(frozen=True)
class GtmVersion:
    path: str
    version_id: str
    name: str
    compiler_error: bool = False


class GtmPort(Protocol):
    async def find_container(self, name: str) -> GtmContainer | None: ...

    async def create_container(self, name: str, usage_context: str) -> GtmContainer: ...

    async def delete_container(self, path: str) -> None: ...

    async def container_config(self, container_path: str) -> str: ...

    async def workspace(self, container_path: str) -> str:
        """Path of the workspace the saga edits (created when the container has none)."""
        ...

    async def list_entities(self, workspace_path: str, kind: str) -> list[GtmEntity]: ...

    async def create_entity(
        self, workspace_path: str, kind: str, body: dict[str, Any]
    ) -> GtmEntity: ...

    async def update_entity(self, entity: GtmEntity, body: dict[str, Any]) -> GtmEntity: ...

    async def delete_entity(self, path: str) -> None: ...

    async def import_gallery_template(
        self, workspace_path: str, owner: str, repository: str
    ) -> GtmEntity: ...

    async def find_version(self, container_path: str, name: str) -> GtmVersion | None: ...

    async def create_version(self, workspace_path: str, name: str, notes: str) -> GtmVersion: ...

    async def live_version(self, container_path: str) -> GtmVersion | None: ...

    async def publish(self, version_path: str) -> GtmVersion: ...


@dataclass(frozen=True)
class DnsRecord:
    type: str
    host: str
    value: str


@dataclass(frozen=True)
class StapeContainer:
    identifier: str
    name: str
    status: str
    stape_domain: str


@dataclass(frozen=True)
class StapeDomain:
    identifier: str
    name: str
    status: str
    error: str
    records: tuple[DnsRecord, ...] = field(default_factory=tuple)


class StapePort(Protocol):
    async def find_container(self, name: str) -> StapeContainer | None: ...

    async def anonymize_keys(self) -> tuple[str, ...]: ...

    async def create_container(self, body: dict[str, Any]) -> StapeContainer: ...

    async def get_container(self, identifier: str) -> StapeContainer: ...

    async def delete_container(self, identifier: str) -> None: ...

    async def find_domain(self, container: str, name: str) -> StapeDomain | None: ...

    async def add_domain(self, container: str, name: str) -> StapeDomain: ...

    async def get_domain(self, container: str, domain: str) -> StapeDomain: ...

    async def revalidate_domain(self, container: str, domain: str) -> StapeDomain: ...

    async def delete_domain(self, container: str, domain: str) -> None: ...


@dataclass(frozen=True)
class CnameRecord:
    id: str
    name: str
    content: str
    proxied: bool
    type: str = "CNAME"


class DnsPort(Protocol):
    async def check_zone(self, base_domain: str) -> None:
        """Raise an ActionableError when the zone or token cannot serve ``base_domain``."""
        ...

    async def find_records(self, name: str) -> list[CnameRecord]:
        """Every record named exactly ``name`` (any type: an A record blocks a CNAME too)."""
        ...

    async def create_cname(self, name: str, content: str, comment: str) -> CnameRecord: ...

    async def delete_record(self, record_id: str) -> None: ...


@dataclass
class Providers:
    meta: MetaPort
    gtm: GtmPort
    stape: StapePort
    dns: DnsPort


class RunRepository(Protocol):
    """Provisioning runs and their steps, plus the per-funnel lock that keeps two runs apart."""

    async def lock_funnel(self, conn: Conn, funnel_id: uuid.UUID) -> bool: ...

    async def unlock_funnel(self, conn: Conn, funnel_id: uuid.UUID) -> None: ...

    async def unfinished_run(self, conn: Conn, funnel_id: uuid.UUID) -> Run | None: ...

    async def latest_run(self, conn: Conn, funnel_id: uuid.UUID) -> Run | None: ...

    async def get_run(self, conn: Conn, run_id: uuid.UUID, *, for_update: bool = False) -> Run: ...

    async def create_run(
        self, conn: Conn, *, tenant_id: uuid.UUID, funnel_id: uuid.UUID, custom_domain: str
    ) -> Run: ...

    async def set_run_status(
        self, conn: Conn, run_id: uuid.UUID, status: RunStatus, error: str | None = None
    ) -> None: ...

    async def start_step(self, conn: Conn, run_id: uuid.UUID, step: str) -> StepRecord: ...

    async def save_step_state(
        self, conn: Conn, run_id: uuid.UUID, step: str, state: dict[str, Any]
    ) -> None: ...

    async def add_created(
        self, conn: Conn, run_id: uuid.UUID, step: str, resource: Resource
    ) -> None: ...

    async def finish_step(
        self,
        conn: Conn,
        run_id: uuid.UUID,
        step: str,
        *,
        status: StepStatus,
        detail: str,
        request: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
        outputs: dict[str, Any] | None = None,
    ) -> None: ...

    async def set_step_status(
        self, conn: Conn, run_id: uuid.UUID, step: str, status: StepStatus, detail: str
    ) -> None: ...

    async def set_snippets(
        self, conn: Conn, run_id: uuid.UUID, snippets: list[dict[str, str]]
    ) -> None: ...

    async def record_test_event(
        self, conn: Conn, run_id: uuid.UUID, event_id: str, at: datetime
    ) -> None: ...

    async def record_approval(
        self, conn: Conn, run_id: uuid.UUID, approved_by: str, note: str, at: datetime
    ) -> None: ...

    async def record_publish(
        self,
        conn: Conn,
        run_id: uuid.UUID,
        published: dict[str, str],
        previous: dict[str, str],
        at: datetime,
    ) -> None: ...

    async def record_publish_rollback(
        self,
        conn: Conn,
        run_id: uuid.UUID,
        *,
        rolled_back_by: str,
        note: str,
        restored: dict[str, str],
        at: datetime,
    ) -> bool: ...


class StatusOutbox(Protocol):
    """Adds a run's StatusUpdate to the outbox inside the transaction recording the change;
    ``status`` defaults to the run's current one (pass the new one when ``run`` is stale)."""

    async def __call__(
        self, conn: Conn, run: Run, detail: str, at: datetime, status: RunStatus | None = None
    ) -> None: ...


# ── the registry's store and cipher ──────────────────────────────────────────────────────────


class KeyRingError(ValueError):
    """The configured key ring cannot be parsed or lacks a needed key."""


@dataclass(frozen=True)
class Sealed:
    key_id: str
    nonce: bytes
    ciphertext: bytes


class Cipher(Protocol):
    """Seals credentials with the primary key and opens them with any configured one; raises
    KeyRingError when a sealed value cannot be opened."""

    @property
    def primary(self) -> str: ...

    def seal(self, secret: dict[str, str], associated_data: bytes) -> Sealed: ...

    def open(self, sealed: Sealed, associated_data: bytes) -> dict[str, str]: ...


class Row(Protocol):
    """A stored credential row, read by column name."""

    def __getitem__(self, key: str) -> Any: ...


class TenantRepository(Protocol):
    """Reads and writes the registry; every method runs on the given connection."""

    async def insert_tenant(
        self,
        conn: Conn,
        *,
        slug: str,
        name: str,
        rate_limit_per_minute: int | None,
        allowed_domains: list[str],
    ) -> Tenant: ...

    async def get_tenant(self, conn: Conn, ref: str) -> Tenant: ...

    async def list_tenants(
        self, conn: Conn, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Tenant]: ...

    async def insert_funnel(self, conn: Conn, tenant_id: uuid.UUID, **values: Any) -> Funnel: ...

    async def update_tenant(
        self, conn: Conn, tenant_id: uuid.UUID, changes: dict[str, Any]
    ) -> Tenant: ...

    async def update_funnel(
        self, conn: Conn, funnel: Funnel, changes: dict[str, Any]
    ) -> Funnel: ...

    async def get_funnel(self, conn: Conn, tenant_id: uuid.UUID, slug: str) -> Funnel: ...

    async def list_funnels(self, conn: Conn, tenant_id: uuid.UUID) -> list[Funnel]: ...

    async def upsert_credential(
        self,
        conn: Conn,
        *,
        tenant_id: uuid.UUID,
        funnel_id: uuid.UUID | None,
        kind: str,
        provider: str,
        public: dict[str, str],
        sealed: Sealed,
    ) -> None: ...

    async def credentials(self, conn: Conn, tenant_id: uuid.UUID) -> Sequence[Row]: ...

    async def credentials_not_sealed_with(self, conn: Conn, key_id: str) -> Sequence[Row]: ...

    async def reseal(self, conn: Conn, credential_id: uuid.UUID, sealed: Sealed) -> None: ...


@dataclass(frozen=True)
class GatewayActivity:
    """What one gateway delivered to ingestion since a moment: authenticated webhooks, and
    requests refused because a credential did not match (by credential)."""

    gateway: str
    verified: int
    refused: dict[str, int]


class WebhookActivityReader(Protocol):
    """Ingestion's record of a tenant's webhooks (``GetWebhookActivity``). Raises
    :class:`~trackai_provisioner.domain.provisioning.DependencyUnavailable` when it cannot
    answer."""

    async def activity(
        self, tenant_id: uuid.UUID, since: datetime
    ) -> Sequence[GatewayActivity]: ...
