"""What the saga needs from each provider, as protocols: the adapters implement them over the real
APIs (official SDKs, httpx) and the unit tests with in-memory doubles.

Every ``find_*`` is the lookup that precedes a create; every ``delete_*`` answers normally when
the resource is already gone, so rollback can be repeated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


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
