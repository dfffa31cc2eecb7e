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
import pytest
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from trackai.common.v1 import events_pb2 as common_pb
from trackai.ingestion.v1 import events_pb2 as ingest
from trackai.matcher.v1 import events_pb2 as mpb
from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai_kit.amqp import IncomingMessage
from trackai_kit.grpc import (
    local_dev_token,
)
from trackai_kit.postgres import create_pool
from trackai_kit.settings import PostgresSettings
from trackai_kit.tenant_config import RegistryClient, tenant_view_client
from trackai_matcher.adapters import repository
from trackai_matcher.adapters.tenants import RegistryTenantDirectory
from trackai_matcher.domain.policy import StatusPolicy
from trackai_matcher.domain.scoring import ModelParams, ProbabilisticModel
from trackai_matcher.entrypoints.consumer import INGEST_TYPE, IngestConsumer
from trackai_matcher.service_layer.ingest import MatchConversion, MatcherConfig
from trackai_matcher.service_layer.matching import MatchEngine
from trackai_matcher.telemetry import MatcherMetrics
from trackai_testing.registry import FakeTenantRegistry, serve_registry

TOKEN = local_dev_token("matcher")
PIXEL = "1234567890"


class FakeRegistry(FakeTenantRegistry):
    """The shared fake registry, with the matcher's tenants (``GetTenantView``)."""

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
        self.views[tenant_id] = config
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

    async def statuses(self) -> list[tuple[str, common_pb.StatusUpdate]]:
        """The ``trackai.status`` updates in the outbox, with their routing keys."""
        rows = await self.fetch(
            "SELECT routing_key, body FROM matcher.outbox WHERE exchange = 'trackai.status' "
            "ORDER BY id"
        )
        return [(r["routing_key"], common_pb.StatusUpdate.FromString(r["body"])) for r in rows]

    async def dispatched(self) -> list[mpb.DispatchRequest]:
        rows = await self.fetch("SELECT body FROM matcher.outbox WHERE exchange = '' ORDER BY id")
        return [mpb.DispatchRequest.FromString(r["body"]) for r in rows]


@pytest.fixture
async def matcher(database_url: str) -> AsyncIterator[Matcher]:
    registry = FakeRegistry()
    async with serve_registry(registry, "matcher", ["GetTenantView"]) as server:
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


def build_service(
    m: Matcher,
    *,
    pool: asyncpg.Pool | None = None,
    pending_event: str | None = None,
    threshold: float = 0.97,
) -> MatchConversion:
    return MatchConversion(
        pool or m.pool,
        store=repository,
        directory=RegistryTenantDirectory(m.client),
        engine=MatchEngine(ProbabilisticModel(ModelParams(threshold=threshold)), repository),
        config=MatcherConfig(
            default_lookback=dt.timedelta(days=30), policy=StatusPolicy(pending_event=pending_event)
        ),
        metrics=MatcherMetrics(m.meter),
    )


ServiceFactory = Callable[..., MatchConversion]


@pytest.fixture
def make_service(matcher: Matcher) -> ServiceFactory:
    return partial(build_service, matcher)


@pytest.fixture
def service(matcher: Matcher) -> MatchConversion:
    return build_service(matcher)


@pytest.fixture
def consumer(service: MatchConversion) -> IngestConsumer:
    return IngestConsumer(service)
