"""The matcher on a freshly migrated database, with a real gRPC tenant registry fake.

The registry fake serves ``GetTenantView`` (the matcher's only grant) from a dict over a real
gRPC server, so the kit's cached client (cache, errors) is exercised as in production.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import asyncpg
import grpc
import pytest
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from trackai.ingestion.v1 import events_pb2 as ingest
from trackai.matcher.v1 import events_pb2 as mpb
from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as prov_grpc
from trackai_kit.amqp import IncomingMessage
from trackai_kit.grpc import (
    AccessPolicy,
    local_dev_callers,
    local_dev_token,
    rpc,
    start_grpc_server,
)
from trackai_kit.postgres import create_pool
from trackai_kit.settings import GrpcSettings, PostgresSettings
from trackai_kit.tenant_config import RegistryClient, tenant_view_client
from trackai_matcher.adapters.telemetry import MatcherMetrics
from trackai_matcher.adapters.tenants import TenantDirectory
from trackai_matcher.domain.policy import StatusPolicy
from trackai_matcher.domain.scoring import ModelParams, ProbabilisticModel
from trackai_matcher.entrypoints.consumer import INGEST_TYPE, IngestConsumer
from trackai_matcher.service_layer.ingest import IngestService, MatcherConfig
from trackai_matcher.service_layer.matching import MatchEngine

TOKEN = local_dev_token("matcher")
PIXEL = "1234567890"
_REGISTRY = prov.DESCRIPTOR.services_by_name["TenantRegistryService"]
REGISTRY = _REGISTRY.full_name


class FakeRegistry(prov_grpc.TenantRegistryServiceServicer):
    """GetTenantView from ``configs``; every other RPC is UNIMPLEMENTED (inherited)."""

    def __init__(self) -> None:
        self.configs: dict[str, prov.TenantView] = {}
        #: When set, every call is refused with this code (a caller not allowed, say).
        self.refuse: grpc.StatusCode | None = None

    async def GetTenantView(
        self, request: prov.GetTenantViewRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> prov.GetTenantViewResponse:
        if self.refuse is not None:
            await context.abort(self.refuse, "matcher may not call GetTenantView")
        config = self.configs.get(request.tenant_ref)
        if config is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "tenant not found")
        return prov.GetTenantViewResponse(view=config)

    def add_tenant(
        self,
        *,
        meta: bool = True,
        test_event_code: str = "",
        funnels: tuple[prov.FunnelView, ...] = (),
    ) -> str:
        tenant_id = str(uuid.uuid4())
        config = prov.TenantView(
            tenant=prov.Tenant(id=tenant_id, slug=f"t-{tenant_id[:8]}", name="Loja"),
            funnels=list(funnels),
        )
        if meta:
            config.meta.CopyFrom(prov.MetaPixel(pixel_id=PIXEL, test_event_code=test_event_code))
        self.configs[tenant_id] = config
        return tenant_id


@dataclass
class Delivery:
    """The parts of an AMQP delivery the consumer reads."""

    body: bytes
    message_id: str
    type: str = INGEST_TYPE
    headers: dict[str, Any] | None = None


@dataclass
class Matcher:
    pool: asyncpg.Pool
    registry: FakeRegistry
    client: RegistryClient[prov.TenantView]
    metrics_reader: InMemoryMetricReader
    meter: Meter
    database_url: str

    def counter(self, name: str) -> float:
        data = self.metrics_reader.get_metrics_data()
        total = 0.0
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        total += sum(p.value for p in metric.data.data_points)
        return total

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self.pool.fetch(sql, *args)

    @staticmethod
    async def feed(consumer: IngestConsumer, *events: ingest.IngestEvent) -> None:
        """Hand each event to the consumer as an AMQP delivery would."""
        for event in events:
            message = Delivery(event.SerializeToString(), event.message_id)
            await consumer(cast(IncomingMessage, message))

    async def match_of(self, tenant: str, order: str) -> dict[str, Any]:
        rows = await self.fetch(
            "SELECT stage, method, session_id, score, runner_up_score, evidence "
            "FROM matcher.matches WHERE tenant_id = $1 AND order_id = $2",
            tenant,
            order,
        )
        assert len(rows) == 1
        return dict(rows[0])

    async def dispatched(self) -> list[mpb.DispatchRequest]:
        rows = await self.fetch("SELECT body FROM matcher.outbox ORDER BY id")
        return [mpb.DispatchRequest.FromString(r["body"]) for r in rows]


@pytest.fixture
async def matcher(database_url: str) -> AsyncIterator[Matcher]:
    registry = FakeRegistry()
    server = await start_grpc_server(
        GrpcSettings(port=0, callers=local_dev_callers()),
        partial(prov_grpc.add_TenantRegistryServiceServicer_to_server, registry),
        [REGISTRY],
        AccessPolicy.of({"matcher": [rpc(_REGISTRY, "GetTenantView")]}),
    )
    pool = await create_pool(PostgresSettings(url=database_url, pool_max=8), schema="matcher")
    reader = InMemoryMetricReader()
    client = tenant_view_client(f"127.0.0.1:{server.port}", TOKEN, ttl_s=0.0)
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    m = Matcher(pool, registry, client, reader, meter, database_url)
    try:
        yield m
    finally:
        await client.close()
        await pool.close()
        await server.stop(0)


def build_service(
    m: Matcher,
    *,
    pool: asyncpg.Pool | None = None,
    pending_event: str | None = None,
    threshold: float = 0.97,
) -> IngestService:
    return IngestService(
        pool or m.pool,
        directory=TenantDirectory(m.client),
        engine=MatchEngine(ProbabilisticModel(ModelParams(threshold=threshold))),
        config=MatcherConfig(
            default_lookback=dt.timedelta(days=30), policy=StatusPolicy(pending_event=pending_event)
        ),
        metrics=MatcherMetrics(m.meter),
    )


ServiceFactory = Callable[..., IngestService]


@pytest.fixture
def make_service(matcher: Matcher) -> ServiceFactory:
    return partial(build_service, matcher)


@pytest.fixture
def service(matcher: Matcher) -> IngestService:
    return build_service(matcher)


@pytest.fixture
def consumer(service: IngestService) -> IngestConsumer:
    return IngestConsumer(service)
