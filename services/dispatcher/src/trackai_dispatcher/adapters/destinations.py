"""Access token and test event code of a destination, from the tenant registry's
``GetMetaDestination`` (the one destination an event goes to; cached by the kit's client, so a
rotated token applies to events already queued)."""

from __future__ import annotations

import grpc

from trackai.provisioner.v1 import provisioner_service_pb2 as registry_pb
from trackai_dispatcher.service_layer.ports import (
    Credentials,
    CredentialUnusable,
    RegistryRefused,
)
from trackai_kit.failures import is_transient_rpc_error, rpc_error_text
from trackai_kit.tenant_config import RegistryClient


class RegistryDestinations:
    """The service layer's ``DestinationResolver`` over the provisioner's
    ``GetMetaDestination``: the registry's refusals become the port's exceptions."""

    def __init__(self, client: RegistryClient[registry_pb.MetaDestination]) -> None:
        self._client = client

    async def credentials(
        self, tenant_id: str, funnel_id: str, pixel_id: str
    ) -> Credentials | None:
        try:
            destination = await self._client.get(tenant_id, funnel_id, pixel_id)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                # It cannot open this funnel's credential (and says which).
                raise CredentialUnusable(rpc_error_text(exc)) from exc
            if is_transient_rpc_error(exc):
                raise
            raise RegistryRefused(rpc_error_text(exc)) from exc
        if destination is None or not destination.access_token:
            return None
        return Credentials(destination.access_token, destination.test_event_code or None)

    def forget(self, tenant_id: str) -> None:
        # After a token error the next probe must read the registry again (the token may have
        # been replaced since it was cached).
        self._client.invalidate(tenant_id)
