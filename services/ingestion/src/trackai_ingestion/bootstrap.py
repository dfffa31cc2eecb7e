"""Composition root of the ingestion service: webhooks, browser collection, the read API and the
outbox relay, wired on the resources `host()` opened.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import asyncpg
from fastapi import FastAPI

from trackai.ingestion.v1 import ingestion_service_pb2 as pb
from trackai.ingestion.v1 import ingestion_service_pb2_grpc as pb_grpc
from trackai_ingestion.adapters.auth_failures import RedisAuthFailures
from trackai_ingestion.adapters.hits import HitStore
from trackai_ingestion.adapters.rate_limit import RedisRateLimiter
from trackai_ingestion.adapters.receipts import ReceiptStats
from trackai_ingestion.adapters.repository import ConversionStore
from trackai_ingestion.adapters.tenants import (
    RegistryTenantDirectory,
    RegistryWebhookConfigs,
    TenantViews,
    WebhookConfigViews,
)
from trackai_ingestion.entrypoints.collect import build_collect_router
from trackai_ingestion.entrypoints.grpc_access import POLICY as GRPC_POLICY
from trackai_ingestion.entrypoints.grpc_ingestion import IngestionServicer
from trackai_ingestion.entrypoints.webhooks import WebhookLimits, build_webhook_router
from trackai_ingestion.service_layer.collect import RecordBrowserHit
from trackai_ingestion.service_layer.collect_limits import CollectRateLimit
from trackai_ingestion.service_layer.conversions import ConversionQueries, WebhookActivityQueries
from trackai_ingestion.service_layer.webhooks import WebhookService
from trackai_ingestion.service_layer.windows import UnknownTenantLimit
from trackai_ingestion.settings import Settings
from trackai_kit import topology
from trackai_kit.outbox import OutboxRelay
from trackai_kit.retention import RetentionTask, Rule, retention_service
from trackai_kit.service import Background, Resources, Wiring
from trackai_kit.tenant_config import webhook_config_client

SCHEMA = "ingestion"
TOPOLOGY = topology.ingestion_topology().merge(topology.status_topology())
RETENTION_INTERVAL_S = 3600.0
#: Redis keys of the collect limits: ``...client:<tenant>:<address>`` and ``...tenant:<tenant>``.
COLLECT_KEY_PREFIX = "trackai:ingestion:collect-rate:"
INGESTION_SERVICE = pb.DESCRIPTOR.services_by_name["IngestionService"].full_name


@dataclass
class Components:
    """The service's parts on one pool: what `wire` registers, and what tests drive directly."""

    webhooks: WebhookService
    collect: RecordBrowserHit
    servicer: IngestionServicer
    #: Per-source budget of unknown-tenant answers, shared by webhooks and collect.
    unknown_tenants: UnknownTenantLimit
    #: Per-client and per-tenant ceilings of browser hits.
    collect_limits: CollectRateLimit
    closers: list[Callable[[], Awaitable[None]]]

    def configure_http(self, app: FastAPI, settings: Settings) -> None:
        app.include_router(
            build_webhook_router(
                self.webhooks,
                WebhookLimits(
                    max_body_bytes=settings.webhook_max_body_bytes,
                    body_timeout_s=settings.webhook_body_timeout_s,
                    max_in_flight=settings.webhook_max_in_flight,
                ),
                trusted_proxies=settings.trusted_proxy_networks,
            )
        )
        app.include_router(
            build_collect_router(
                self.collect,
                trusted_proxies=settings.trusted_proxy_networks,
                unknown_tenants=self.unknown_tenants,
                rate_limit=self.collect_limits,
            )
        )


def record_browser_hit(
    pool: asyncpg.Pool, views: TenantViews, *, acquire_timeout_s: float | None = None
) -> RecordBrowserHit:
    """The collect use case on the PostgreSQL hit store and a source of tenant views."""
    return RecordBrowserHit(
        HitStore(pool, acquire_timeout_s=acquire_timeout_s), RegistryTenantDirectory(views)
    )


def build_components(settings: Settings, pool: asyncpg.Pool) -> Components:
    tenants = webhook_config_client(
        settings.provisioner_target,
        settings.grpc_client_token.get_secret_value(),
        tls=settings.grpc_tls,
    )
    limiter = RedisRateLimiter(settings.redis_url)
    # Its own keys, fail-open cool-down and metric attribute (purpose=collect).
    collect_limiter = RedisRateLimiter(
        settings.redis_url, key_prefix=COLLECT_KEY_PREFIX, purpose="collect"
    )
    store = ConversionStore(pool, acquire_timeout_s=settings.db_acquire_timeout_s)
    unknown_tenants = UnknownTenantLimit(
        tenants.cached, per_window=settings.unknown_tenant_limit_per_minute
    )
    auth_failures = RedisAuthFailures(settings.redis_url)
    return Components(
        webhooks=WebhookService(
            RegistryWebhookConfigs(tenants),
            limiter,
            store,
            default_rate_limit=settings.rate_limit_per_minute,
            relay_signature_tolerance_s=settings.relay_signature_tolerance_s,
            accept_legacy_relay_signature=settings.legacy_relay_signature,
            unknown_tenants=unknown_tenants,
            auth_failures=auth_failures,
        ),
        collect=record_browser_hit(
            pool, WebhookConfigViews(tenants), acquire_timeout_s=settings.db_acquire_timeout_s
        ),
        servicer=IngestionServicer(
            ConversionQueries(store), WebhookActivityQueries(ReceiptStats(pool), auth_failures)
        ),
        unknown_tenants=unknown_tenants,
        collect_limits=CollectRateLimit(
            collect_limiter,
            per_client=settings.collect_ip_rate_limit_per_minute,
            per_tenant=settings.collect_tenant_rate_limit_per_minute,
        ),
        closers=[tenants.close, limiter.close, collect_limiter.close, auth_failures.close],
    )


async def wire(settings: Settings, resources: Resources) -> Wiring:
    """HTTP webhooks + collect, gRPC IngestionService, and the outbox relay to ``ingest-events``.

    Readiness checks only PostgreSQL: webhooks are accepted into the outbox while RabbitMQ is
    down, and the rate limiter fails open while Redis is down.
    """
    assert resources.pool is not None
    parts = build_components(settings, resources.pool)
    return Wiring(
        grpc_policy=GRPC_POLICY,
        grpc_services=[
            (
                INGESTION_SERVICE,
                partial(pb_grpc.add_IngestionServiceServicer_to_server, parts.servicer),
            ),
            # The relay process's sweeps, on the operator's demand (`trackai retention run`).
            retention_service("ingestion", resources.pool, retention_rules(settings)),
        ],
        background=_relay_tasks(settings, resources) if settings.relay_in_serve else [],
        on_shutdown=parts.closers,
        configure_http=partial(parts.configure_http, settings=settings),
    )


def _relay(settings: Settings, resources: Resources) -> OutboxRelay:
    assert resources.pool is not None and resources.amqp is not None
    # Ingestion's outbox has no NOTIFY trigger (it would serialise webhook commits): poll briefly.
    return OutboxRelay(
        resources.pool,
        resources.amqp,
        schema=SCHEMA,
        poll_interval_s=settings.relay_poll_interval_s,
    )


def retention_rules(settings: Settings) -> list[Rule]:
    """What ingestion keeps, and for how long (docs/runbooks/retention.md)."""
    day = timedelta(days=1)
    return [
        Rule(
            "receipts",
            "ingestion.webhook_receipts",
            "received_at",
            settings.receipt_retention_days * day,
        ),
        Rule(
            "outbox",
            "ingestion.outbox",
            "created_at",
            settings.outbox_retention_days * day,
            condition="published_at IS NOT NULL",
        ),
        Rule(
            "event_network",
            "ingestion.events",
            "received_at",
            settings.raw_network_retention_days * day,
            condition="client_ip IS NOT NULL OR user_agent IS NOT NULL",
            blank="client_ip = NULL, user_agent = NULL",
        ),
    ]


def _relay_tasks(settings: Settings, resources: Resources) -> list[Background]:
    """The relay and, beside it (one process kind sweeps), the retention sweep."""
    assert resources.pool is not None
    retention = RetentionTask(
        resources.pool, retention_rules(settings), interval_s=RETENTION_INTERVAL_S
    )
    return [_relay(settings, resources).run, retention]


async def wire_relay(settings: Settings, resources: Resources) -> Wiring:
    """The `relay` process: publishes the outbox to ``ingest-events``, nothing else.

    Run beside `serve` (with INGESTION_RELAY_IN_SERVE=false) so publishing bursts never share an
    event loop with webhook acknowledgements.
    """
    return Wiring(background=_relay_tasks(settings, resources))
