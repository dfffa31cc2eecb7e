"""gRPC servicer of ``IngestionService``: tenant-scoped reads of stored conversions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Any, TypeVar

import grpc

from trackai.ingestion.v1 import ingestion_service_pb2 as pb
from trackai.ingestion.v1 import ingestion_service_pb2_grpc as pb_grpc
from trackai_ingestion.adapters.messages import PB_TO_STATUS, conversion_pb, timestamp
from trackai_ingestion.service_layer.conversions import (
    ConversionQueries,
    InvalidQuery,
    WebhookActivityQueries,
)
from trackai_ingestion.service_layer.ports import StoredConversion

T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]


def _record(stored: StoredConversion) -> pb.ConversionRecord:
    return pb.ConversionRecord(
        id=str(stored.id),
        tenant_id=str(stored.tenant_id),
        received_time=timestamp(stored.received_at),
        conversion=conversion_pb(stored.conversion, str(stored.id)),
    )


async def _call(context: Context, use_case: Callable[[], Awaitable[T]]) -> T:
    try:
        return await use_case()
    except InvalidQuery as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        raise  # context.abort always raises; this keeps the type checker honest


class IngestionServicer(pb_grpc.IngestionServiceServicer):
    def __init__(self, queries: ConversionQueries, activity: WebhookActivityQueries) -> None:
        self._queries = queries
        self._activity = activity

    async def GetWebhookActivity(
        self, request: pb.GetWebhookActivityRequest, context: Context
    ) -> pb.GetWebhookActivityResponse:
        since = (
            request.since_time.ToDatetime(tzinfo=UTC) if request.HasField("since_time") else None
        )
        found, refused = await _call(
            context, lambda: self._activity.since(request.tenant_id, since)
        )
        return pb.GetWebhookActivityResponse(
            refused=[
                pb.CredentialMismatch(
                    gateway=r.gateway,
                    credential=r.credential,
                    count=r.count,
                    last_time=timestamp(r.last_at),
                )
                for r in refused
            ],
            gateways=[
                pb.GatewayActivity(
                    gateway=a.gateway,
                    received=a.received,
                    by_outcome=a.by_outcome,
                    last_received_time=timestamp(a.last_received_at)
                    if a.last_received_at
                    else None,
                )
                for a in found
            ],
        )

    async def GetConversion(
        self, request: pb.GetConversionRequest, context: Context
    ) -> pb.GetConversionResponse:
        stored = await _call(
            context, lambda: self._queries.get(request.tenant_id, request.conversion_id)
        )
        if stored is None:
            # Same answer for "absent" and "another tenant's": ids do not leak across tenants.
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no conversion {request.conversion_id!r} for tenant {request.tenant_id!r}",
            )
        assert stored is not None
        return pb.GetConversionResponse(conversion=_record(stored))

    async def BatchGetConversions(
        self, request: pb.BatchGetConversionsRequest, context: Context
    ) -> pb.BatchGetConversionsResponse:
        found = await _call(
            context,
            lambda: self._queries.get_many(request.tenant_id, list(request.conversion_ids)),
        )
        return pb.BatchGetConversionsResponse(conversions=[_record(s) for s in found])

    async def ListConversions(
        self, request: pb.ListConversionsRequest, context: Context
    ) -> pb.ListConversionsResponse:
        unknown = [s for s in request.statuses if s not in PB_TO_STATUS]
        if unknown:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"statuses contains unknown values {unknown}"
            )
        page = await _call(
            context,
            lambda: self._queries.list(
                request.tenant_id,
                statuses=[PB_TO_STATUS[s] for s in request.statuses],
                start=request.start_time.ToDatetime(tzinfo=UTC)
                if request.HasField("start_time")
                else None,
                end=request.end_time.ToDatetime(tzinfo=UTC)
                if request.HasField("end_time")
                else None,
                page_size=request.page_size,
                page_token=request.page_token,
                gateway=request.gateway,
                order_id=request.order_id,
                funnel_id=request.funnel_id,
            ),
        )
        return pb.ListConversionsResponse(
            conversions=[_record(s) for s in page.conversions], next_page_token=page.next_page_token
        )
