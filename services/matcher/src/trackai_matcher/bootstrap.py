"""Composition root of the matcher service."""

from __future__ import annotations

import asyncio
import datetime as dt
from functools import partial

from trackai.matcher.v1 import matcher_service_pb2 as pb
from trackai.matcher.v1 import matcher_service_pb2_grpc as pb_grpc
from trackai_kit import topology
from trackai_kit.amqp import AmqpClient, ConsumerHandle, RetryPolicy
from trackai_kit.backoff import Backoff
from trackai_kit.logging import get_logger
from trackai_kit.outbox import OutboxRelay
from trackai_kit.retention import RetentionTask, Rule, retention_service
from trackai_kit.service import Resources, Wiring
from trackai_kit.tenant_config import tenant_view_client
from trackai_matcher.adapters import repository
from trackai_matcher.adapters.reports import PostgresMatchReports
from trackai_matcher.adapters.tenants import RegistryTenantDirectory
from trackai_matcher.domain.policy import StatusPolicy
from trackai_matcher.domain.scoring import ModelParams, ProbabilisticModel
from trackai_matcher.entrypoints.consumer import IngestConsumer
from trackai_matcher.entrypoints.grpc_access import POLICY as GRPC_POLICY
from trackai_matcher.entrypoints.grpc_matcher import MatcherServicer
from trackai_matcher.service_layer.ingest import MatchConversion, MatcherConfig
from trackai_matcher.service_layer.matching import MatchEngine
from trackai_matcher.service_layer.queries import MatchQueries
from trackai_matcher.settings import Settings
from trackai_matcher.telemetry import MatcherMetrics

SCHEMA = "matcher"
TOPOLOGY = topology.matcher_topology().merge(topology.status_topology())
MATCHER_SERVICE = pb.DESCRIPTOR.services_by_name["MatcherService"].full_name
RETENTION_INTERVAL_S = 3600.0
log = get_logger(__name__)


def model_params(settings: Settings) -> ModelParams:
    return ModelParams(
        window=dt.timedelta(hours=settings.probabilistic_window_hours),
        threshold=settings.probabilistic_threshold,
    )


def matcher_config(settings: Settings) -> MatcherConfig:
    return MatcherConfig(
        default_lookback=dt.timedelta(days=settings.default_lookback_days),
        policy=StatusPolicy(pending_event=settings.pending_payment_event or None),
    )


async def wire(settings: Settings, resources: Resources) -> Wiring:
    """The read API: MatcherService on the gRPC server, and the operator's RetentionService
    (the `consume` process's sweeps, on demand)."""
    assert resources.pool is not None
    servicer = MatcherServicer(MatchQueries(PostgresMatchReports(resources.pool)))
    return Wiring(
        grpc_policy=GRPC_POLICY,
        grpc_services=[
            (MATCHER_SERVICE, partial(pb_grpc.add_MatcherServiceServicer_to_server, servicer)),
            retention_service("matcher", resources.pool, retention_rules(settings)),
        ],
    )


async def _consume_when_reachable(
    amqp: AmqpClient, consumer: IngestConsumer, stop: asyncio.Event
) -> None:
    """Start consuming once the broker answers (the host declares the topology meanwhile), then
    hold the consumer until shutdown; unacknowledged messages go back to the queue."""
    backoff = Backoff()
    handle: ConsumerHandle | None = None
    while not stop.is_set() and handle is None:
        try:
            handle = await amqp.consume(
                topology.INGEST_EVENTS,
                consumer,
                retry=RetryPolicy(topology.INGEST_RETRY_DELAYS_MS),
            )
        except Exception as exc:
            log.warning("cannot consume ingest-events yet", error=repr(exc))
            await backoff.pause(stop)
    if handle is None:
        return
    log.info("consuming", queue=topology.INGEST_EVENTS)
    try:
        await stop.wait()
    finally:
        await handle.cancel()


def retention_rules(settings: Settings) -> list[Rule]:
    """What the matcher keeps, and for how long (docs/runbooks/retention.md)."""
    days = dt.timedelta(days=1)
    return [
        Rule("inbox", "matcher.inbox", "processed_at", settings.inbox_retention_days * days),
        Rule(
            "outbox",
            "matcher.outbox",
            "created_at",
            settings.outbox_retention_days * days,
            condition="published_at IS NOT NULL",
        ),
        # `hits >= 1` (always true) lets the planner use the tenant/time index (docs/schema).
        Rule(
            "clicks",
            "matcher.clicks",
            "last_seen_at",
            settings.click_retention_days * days,
            condition="hits >= 1",
        ),
        Rule(
            "click_network",
            "matcher.clicks",
            "last_seen_at",
            settings.raw_network_retention_days * days,
            condition="hits >= 1 AND (client_ip IS NOT NULL OR user_agent IS NOT NULL)",
            blank="client_ip = NULL, user_agent = NULL",
        ),
    ]


async def wire_consumer(settings: Settings, resources: Resources) -> Wiring:
    """Consumer process: `ingest-events` handler, outbox relay to `capi-dispatch`, retention
    sweeps."""
    assert resources.pool is not None and resources.amqp is not None
    config_client = tenant_view_client(
        settings.provisioner_target,
        settings.grpc_client_token.get_secret_value(),
        tls=settings.grpc_tls,
    )
    service = MatchConversion(
        resources.pool,
        store=repository,
        directory=RegistryTenantDirectory(config_client),
        engine=MatchEngine(ProbabilisticModel(model_params(settings)), repository),
        config=matcher_config(settings),
        metrics=MatcherMetrics(),
    )
    relay = OutboxRelay(resources.pool, resources.amqp, schema=SCHEMA)
    return Wiring(
        background=[
            relay.run,
            partial(
                _consume_when_reachable,
                resources.amqp,
                IngestConsumer(service, reconnect=resources.pool.expire_connections),
            ),
            RetentionTask(
                resources.pool, retention_rules(settings), interval_s=RETENTION_INTERVAL_S
            ),
        ],
        on_shutdown=[config_client.close],
    )
