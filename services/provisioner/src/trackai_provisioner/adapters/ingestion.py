"""Ingestion's gRPC read of a tenant's webhooks (``GetWebhookActivity``), as the provisioner's
:class:`WebhookActivityReader`: every stored receipt is a webhook that passed authentication."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import grpc

from trackai.ingestion.v1 import ingestion_service_pb2 as ing
from trackai.ingestion.v1 import ingestion_service_pb2_grpc as ing_grpc
from trackai_kit.failures import rpc_error_text
from trackai_provisioner.domain.provisioning import DependencyUnavailable
from trackai_provisioner.service_layer.ports import GatewayActivity


class GrpcWebhookActivity:
    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self._channel = channel
        self._stub = ing_grpc.IngestionServiceStub(channel)
        self._timeout_s = timeout_s

    async def activity(self, tenant_id: uuid.UUID, since: datetime) -> Sequence[GatewayActivity]:
        request = ing.GetWebhookActivityRequest(tenant_id=str(tenant_id))
        request.since_time.FromDatetime(since)
        try:
            answer = await self._stub.GetWebhookActivity(request, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise DependencyUnavailable(
                "ingestion could not say whether a verified webhook arrived "
                f"({rpc_error_text(exc)}); try again"
            ) from None
        refused: dict[str, dict[str, int]] = {}
        for mismatch in answer.refused:
            refused.setdefault(mismatch.gateway, {})[mismatch.credential] = mismatch.count
        seen = {a.gateway: a.received for a in answer.gateways}
        return [
            GatewayActivity(gateway, seen.get(gateway, 0), refused.get(gateway, {}))
            for gateway in sorted(seen.keys() | refused.keys())
        ]

    async def aclose(self) -> None:
        await self._channel.close()
