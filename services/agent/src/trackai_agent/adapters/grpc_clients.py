"""The provisioner and ingestion over gRPC (the kit's authenticated client channel)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from trackai.ingestion.v1 import ingestion_service_pb2 as ing
from trackai.ingestion.v1 import ingestion_service_pb2_grpc as ing_grpc
from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as prov_grpc
from trackai_agent.domain.model import (
    DependencyError,
    NotReady,
    SetupContext,
    Snippet,
    TestEventSent,
    WebhookActivity,
)

_UNAVAILABLE = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
)


def _dependency(name: str, exc: grpc.aio.AioRpcError) -> DependencyError:
    return DependencyError(name, f"{exc.code().name}: {exc.details() or ''}".strip(": "))


class GrpcProvisioner:
    """:class:`SetupRegistry` on the provisioner's registry and provisioning services."""

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float = 10.0) -> None:
        self._registry = prov_grpc.TenantRegistryServiceStub(channel)
        self._provisioning = prov_grpc.ProvisioningServiceStub(channel)
        self._timeout_s = timeout_s

    async def context(self, tenant_id: str, funnel_slug: str) -> SetupContext:
        try:
            answer = await self._registry.GetTenantView(
                prov.GetTenantViewRequest(tenant_ref=tenant_id), timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            raise _dependency("provisioner", exc) from None
        view = answer.view
        funnels = [f for f in view.funnels if not funnel_slug or f.funnel.slug == funnel_slug]
        funnel = funnels[0] if len(funnels) == 1 else None
        meta = funnel.meta if funnel is not None and funnel.HasField("meta") else view.meta
        return SetupContext(
            tenant_id=view.tenant.id or tenant_id,
            funnel_slug=funnel.funnel.slug if funnel else funnel_slug,
            landing_url=funnel.funnel.landing_url if funnel else "",
            pixel_id=meta.pixel_id,
            meta_token=await self._meta_token(
                view.tenant.id or tenant_id, funnel.funnel.id if funnel else "", meta.pixel_id
            ),
            test_event_code=(funnel.funnel.test_event_code if funnel else "")
            or meta.test_event_code,
            gateways=tuple(sorted(view.tenant.configured_gateways)),
        )

    async def _meta_token(self, tenant_id: str, funnel_id: str, pixel_id: str) -> str:
        """The stored token of the destination, which ``validate_meta_token`` debugs; empty when
        none is stored (or it cannot be opened: the tool then asks for it again)."""
        if not pixel_id:
            return ""
        try:
            answer = await self._registry.GetMetaDestination(
                prov.GetMetaDestinationRequest(
                    tenant_ref=tenant_id, funnel_id=funnel_id, pixel_id=pixel_id
                ),
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                return ""
            raise _dependency("provisioner", exc) from None
        return answer.destination.access_token

    async def _run(self, tenant_id: str, funnel_slug: str) -> prov.ProvisioningRun:
        try:
            answer = await self._provisioning.GetProvisioningRun(
                prov.GetProvisioningRunRequest(
                    funnel=prov.FunnelRef(tenant_ref=tenant_id, funnel_slug=funnel_slug)
                ),
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NotReady("o provisionamento deste funil ainda não foi executado") from None
            raise _dependency("provisioner", exc) from None
        return answer.run

    async def snippets(self, tenant_id: str, funnel_slug: str) -> Sequence[Snippet]:
        run = await self._run(tenant_id, funnel_slug)
        if not run.result.snippets:
            raise NotReady("o provisionamento ainda não terminou")
        return [Snippet(s.platform, s.title, s.where, s.content) for s in run.result.snippets]

    async def send_test_event(self, tenant_id: str, funnel_slug: str) -> TestEventSent:
        run = await self._run(tenant_id, funnel_slug)
        try:
            sent = await self._provisioning.SendTestEvent(
                prov.SendTestEventRequest(run_id=run.run_id), timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise NotReady(exc.details() or "o provisionamento não está pronto") from None
            raise _dependency("provisioner", exc) from None
        return TestEventSent(
            sent.run_id, sent.event_id, sent.events_received, sent.fbtrace_id, sent.test_event_code
        )


class GrpcIngestion:
    """:class:`WebhookReader` on ingestion's ``GetWebhookActivity``: every stored receipt is a
    webhook that passed authentication (a panel's test payload included)."""

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float = 10.0) -> None:
        self._stub = ing_grpc.IngestionServiceStub(channel)
        self._timeout_s = timeout_s

    async def activity(
        self, tenant_id: str, gateways: Sequence[str], since: datetime
    ) -> Sequence[WebhookActivity]:
        request = ing.GetWebhookActivityRequest(tenant_id=tenant_id)
        request.since_time.FromDatetime(since)
        try:
            answer = await self._stub.GetWebhookActivity(request, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise _dependency("ingestion", exc) from None
        found = {a.gateway: a for a in answer.gateways}
        reports = []
        for gateway in gateways:
            seen = found.get(gateway)
            refused = [r for r in answer.refused if r.gateway == gateway]
            reports.append(
                WebhookActivity(
                    gateway,
                    seen.received if seen else 0,
                    _time(seen.last_received_time, since) if seen else None,
                    dict(seen.by_outcome) if seen else {},
                    {r.credential: r.count for r in refused},
                    max((_time(r.last_time, since) for r in refused), default=None),
                )
            )
        return reports


def _time(stamp: Timestamp, like: datetime) -> datetime:
    return stamp.ToDatetime(tzinfo=like.tzinfo)
