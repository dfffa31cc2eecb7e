"""The provisioner's TenantRegistryService as the other services call it, from memory, on a real
gRPC server: one fake for every service's tests and the benchmarks.

It answers the three reads other services make (``GetWebhookConfig`` for ingestion,
``GetTenantView`` for the matcher and the collect endpoint, ``GetMetaDestination`` for the
dispatcher) like the real one: an unknown tenant or destination is NOT_FOUND; every other RPC is
UNIMPLEMENTED (the generated base class).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import grpc

from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as prov_grpc
from trackai_kit.grpc import AccessPolicy, GrpcServer, local_dev_callers, rpc, start_grpc_server
from trackai_kit.settings import GrpcSettings

_SERVICE = prov.DESCRIPTOR.services_by_name["TenantRegistryService"]


@dataclass
class Destination:
    """A Meta destination and the test event code each funnel puts in force."""

    destination: prov.MetaDestination
    funnel_codes: dict[str, str] = field(default_factory=dict)


class FakeTenantRegistry(prov_grpc.TenantRegistryServiceServicer):
    """What a test registers, served back; ``calls`` counts every call answered or refused."""

    def __init__(self) -> None:
        #: Tenant id → its webhook configuration (``GetWebhookConfig``).
        self.webhook_configs: dict[str, prov.WebhookConfig] = {}
        #: Tenant id → its view (``GetTenantView``).
        self.views: dict[str, prov.TenantView] = {}
        #: Tenant id → its default Meta destination (``GetMetaDestination``).
        self.destinations: dict[str, Destination] = {}
        #: (tenant, pixel) → why that destination's credential cannot be opened (answered
        #: FAILED_PRECONDITION, as the provisioner does).
        self.broken: dict[tuple[str, str], str] = {}
        #: When set, every call is refused with this code (a caller not allowed, say).
        self.refuse: grpc.StatusCode | None = None
        self.calls = 0

    async def _enter(self, context: grpc.aio.ServicerContext[Any, Any], method: str) -> None:
        self.calls += 1
        if self.refuse is not None:
            await context.abort(self.refuse, f"this caller may not call {method}")

    async def GetWebhookConfig(
        self, request: prov.GetWebhookConfigRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> prov.GetWebhookConfigResponse:
        await self._enter(context, "GetWebhookConfig")
        config = self.webhook_configs.get(request.tenant_ref)
        if config is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such tenant")
        return prov.GetWebhookConfigResponse(config=config)

    async def GetTenantView(
        self, request: prov.GetTenantViewRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> prov.GetTenantViewResponse:
        await self._enter(context, "GetTenantView")
        view = self.views.get(request.tenant_ref)
        if view is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "tenant not found")
        return prov.GetTenantViewResponse(view=view)

    async def GetMetaDestination(
        self, request: prov.GetMetaDestinationRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> prov.GetMetaDestinationResponse:
        await self._enter(context, "GetMetaDestination")
        if (why := self.broken.get((request.tenant_ref, request.pixel_id))) is not None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, why)
        tenant = self.destinations.get(request.tenant_ref)
        if tenant is None or tenant.destination.pixel_id != request.pixel_id:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no destination")
        found = prov.MetaDestination()
        found.CopyFrom(tenant.destination)
        found.test_event_code = tenant.funnel_codes.get(request.funnel_id, "")
        return prov.GetMetaDestinationResponse(destination=found)


@contextlib.asynccontextmanager
async def serve_registry(
    registry: FakeTenantRegistry, caller: str, methods: Sequence[str]
) -> AsyncIterator[GrpcServer]:
    """``registry`` on an ephemeral port of 127.0.0.1, granting ``caller`` (a development
    identity, ``local_dev_token(caller)``) the named ``methods`` only, as the real policy does."""
    server = await start_grpc_server(
        GrpcSettings(port=0, callers=local_dev_callers()),
        partial(prov_grpc.add_TenantRegistryServiceServicer_to_server, registry),
        [_SERVICE.full_name],
        AccessPolicy.of({caller: [rpc(_SERVICE, method) for method in methods]}),
    )
    try:
        yield server
    finally:
        await server.stop(0)
