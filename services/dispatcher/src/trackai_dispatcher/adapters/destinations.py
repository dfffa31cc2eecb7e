"""Access token and test event code of a destination, from the tenant registry's
``GetMetaDestination`` (the one destination an event goes to; cached by the kit's client, so a
rotated token applies to events already queued)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from trackai.provisioner.v1 import provisioner_service_pb2 as registry_pb
from trackai_kit.tenant_config import RegistryClient


@dataclass(frozen=True)
class Credentials:
    access_token: str
    test_event_code: str | None


class DestinationResolver(Protocol):
    async def credentials(
        self, tenant_id: str, funnel_id: str, pixel_id: str
    ) -> Credentials | None: ...

    def forget(self, tenant_id: str) -> None: ...


class RegistryDestinations:
    """:class:`DestinationResolver` over the provisioner's ``GetMetaDestination``."""

    def __init__(self, client: RegistryClient[registry_pb.MetaDestination]) -> None:
        self._client = client

    async def credentials(
        self, tenant_id: str, funnel_id: str, pixel_id: str
    ) -> Credentials | None:
        destination = await self._client.get(tenant_id, funnel_id, pixel_id)
        if destination is None or not destination.access_token:
            return None
        return Credentials(destination.access_token, destination.test_event_code or None)

    def forget(self, tenant_id: str) -> None:
        # After a token error the next probe must read the registry again (the token may have
        # been replaced since it was cached).
        self._client.invalidate(tenant_id)
