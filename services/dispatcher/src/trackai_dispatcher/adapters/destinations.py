"""Access token and test event code of a destination, from the tenant registry (cached by the
kit's TenantConfigClient, so a rotated token applies to events already queued)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from trackai.provisioner.v1 import provisioner_service_pb2 as registry_pb
from trackai_kit.tenant_config import TenantConfigClient


class CredentialUnreadable(Exception):
    """The registry could not decrypt the Meta credential the event needs (the message names
    it); the event cannot be sent until the credential is set again."""


@dataclass(frozen=True)
class Credentials:
    access_token: str
    test_event_code: str | None


class DestinationResolver(Protocol):
    async def credentials(
        self, tenant_id: str, funnel_id: str, pixel_id: str
    ) -> Credentials | None: ...

    def forget(self, tenant_id: str) -> None: ...


def credentials_from(
    config: registry_pb.TenantConfig, funnel_id: str, pixel_id: str
) -> Credentials | None:
    """The destination that delivers ``pixel_id`` for ``funnel_id`` (or the tenant default).

    A funnel with its own destination uses its token; otherwise the tenant default applies. The
    funnel's test event code wins over the destination's. None when no destination reaches the
    pixel (the event cannot be sent); :class:`CredentialUnreadable` when none does because the
    registry could not decrypt a Meta credential of the tenant.
    """
    funnel_code = ""
    candidates: list[registry_pb.MetaDestination] = []
    for funnel in config.funnels:
        if funnel_id and funnel.funnel.id == funnel_id:
            funnel_code = funnel.funnel.test_event_code
            if funnel.HasField("meta"):
                candidates.append(funnel.meta)
    if config.HasField("meta"):
        candidates.append(config.meta)
    candidates.extend(f.meta for f in config.funnels if f.HasField("meta"))
    for destination in candidates:
        if destination.pixel_id == pixel_id and destination.access_token:
            return Credentials(
                destination.access_token, funnel_code or destination.test_event_code or None
            )
    broken = [b for b in config.broken_credentials if b.kind == "meta"]
    if broken:
        raise CredentialUnreadable(
            "; ".join(
                f"the Meta credential of {'funnel ' + b.funnel_id if b.funnel_id else 'the tenant'}"
                f" cannot be decrypted by the provisioner ({b.error}); set it again"
                for b in broken
            )
        )
    return None


class RegistryDestinations:
    """:class:`DestinationResolver` over the provisioner's ``GetTenantConfig``."""

    def __init__(self, client: TenantConfigClient) -> None:
        self._client = client

    async def credentials(
        self, tenant_id: str, funnel_id: str, pixel_id: str
    ) -> Credentials | None:
        config = await self._client.get(tenant_id)
        if config is None:
            return None
        return credentials_from(config, funnel_id, pixel_id)

    def forget(self, tenant_id: str) -> None:
        # After a token error the next probe must read the registry again (the token may have
        # been replaced since it was cached).
        self._client.invalidate(tenant_id)
