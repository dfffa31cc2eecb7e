"""The dispatcher's delivery health (breakers, dead letters, parameter coverage) and
ingestion's webhook activity (refused credentials, last webhook) as the console's ports."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import grpc

from trackai.dispatcher.v1 import dispatcher_service_pb2 as disp
from trackai.dispatcher.v1 import dispatcher_service_pb2_grpc as disp_grpc
from trackai.ingestion.v1 import ingestion_service_pb2 as ing
from trackai.ingestion.v1 import ingestion_service_pb2_grpc as ing_grpc
from trackai_console.adapters.read_apis import answered, to_datetime, to_timestamp
from trackai_console.domain.health import Coverage, CredentialRefusal, DestinationHealth
from trackai_console.service_layer.ports import WebhookReport

if TYPE_CHECKING:
    from trackai.dispatcher.v1.dispatcher_service_pb2_grpc import DispatcherServiceAsyncStub
    from trackai.ingestion.v1.ingestion_service_pb2_grpc import IngestionServiceAsyncStub

_BREAKERS = {
    disp.BREAKER_STATE_CLOSED: "closed",
    disp.BREAKER_STATE_OPEN: "open",
    disp.BREAKER_STATE_HALF_OPEN: "half_open",
}


class GrpcDeliveryHealth:
    def __init__(self, dispatcher: grpc.aio.Channel, *, timeout_s: float) -> None:
        self._dispatcher: DispatcherServiceAsyncStub = disp_grpc.DispatcherServiceStub(dispatcher)
        self._timeout = timeout_s

    async def destinations(self, tenant_id: str | None) -> list[DestinationHealth]:
        response = await answered(
            self._dispatcher.ListDestinationHealth(
                disp.ListDestinationHealthRequest(tenant_id=tenant_id or ""),
                timeout=self._timeout,
            )
        )
        return [
            DestinationHealth(
                tenant_id=d.tenant_id,
                pixel_id=d.pixel_id,
                breaker=_BREAKERS.get(d.breaker_state, "closed"),
                consecutive_failures=d.consecutive_failures,
                last_code=d.last_code,
                reason=d.reason,
                opened_at=to_datetime(d.opened_time) if d.HasField("opened_time") else None,
                probe_at=to_datetime(d.probe_time) if d.HasField("probe_time") else None,
                dead_letters=d.dead_letters,
            )
            for d in response.destinations
        ]

    async def coverage(self, tenant_id: str, start: datetime, end: datetime) -> Coverage:
        response = await answered(
            self._dispatcher.GetParameterCoverage(
                disp.GetParameterCoverageRequest(
                    tenant_id=tenant_id, start_time=to_timestamp(start), end_time=to_timestamp(end)
                ),
                timeout=self._timeout,
            )
        )
        return Coverage(response.events, {p.parameter: p.events for p in response.parameters})


class GrpcWebhookActivity:
    def __init__(self, ingestion: grpc.aio.Channel, *, timeout_s: float) -> None:
        self._ingestion: IngestionServiceAsyncStub = ing_grpc.IngestionServiceStub(ingestion)
        self._timeout = timeout_s

    async def since(self, tenant_id: str, since: datetime) -> WebhookReport:
        response = await answered(
            self._ingestion.GetWebhookActivity(
                ing.GetWebhookActivityRequest(tenant_id=tenant_id, since_time=to_timestamp(since)),
                timeout=self._timeout,
            )
        )
        last = [
            to_datetime(g.last_received_time)
            for g in response.gateways
            if g.HasField("last_received_time")
        ]
        return WebhookReport(
            refusals=[
                CredentialRefusal(r.gateway, r.credential, r.count, to_datetime(r.last_time))
                for r in response.refused
            ],
            last_received_at=max(last) if last else None,
        )
