"""Composition root of the provisioner: the registry and the provisioning saga on the shared
resources, with the provider adapters built from settings.
"""

from __future__ import annotations

import logging
from functools import partial

from trackai.provisioner.v1 import provisioner_service_pb2 as pb
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as pb_grpc
from trackai_kit.grpc import client_channel
from trackai_kit.logging import get_logger
from trackai_kit.outbox import OutboxRelay
from trackai_kit.service import Resources, Wiring
from trackai_kit.topology import Topology, status_topology
from trackai_provisioner.adapters.cloudflare_dns import CloudflareDns
from trackai_provisioner.adapters.crypto import KeyRing
from trackai_provisioner.adapters.gtm import GtmApi, gtm_credentials
from trackai_provisioner.adapters.ingestion import GrpcWebhookActivity
from trackai_provisioner.adapters.meta import MetaGraph
from trackai_provisioner.adapters.repository import PostgresTenantRepository
from trackai_provisioner.adapters.runs import PostgresRunRepository
from trackai_provisioner.adapters.stape import StapeApi
from trackai_provisioner.adapters.status_outbox import enqueue_status
from trackai_provisioner.adapters.templates import load_gtm_templates
from trackai_provisioner.domain.provisioning import ProvisioningError
from trackai_provisioner.entrypoints.grpc_access import POLICY as GRPC_POLICY
from trackai_provisioner.entrypoints.grpc_provisioning import ProvisioningServicer
from trackai_provisioner.entrypoints.grpc_registry import TenantRegistryServicer
from trackai_provisioner.service_layer.ports import Database, Providers, WebhookActivityReader
from trackai_provisioner.service_layer.provisioning import ProvisioningService
from trackai_provisioner.service_layer.registry import TenantRegistry
from trackai_provisioner.service_layer.review import ReviewService
from trackai_provisioner.service_layer.steps.context import SagaConfig
from trackai_provisioner.service_layer.webhook_gate import WebhookGate
from trackai_provisioner.settings import Settings

SCHEMA = "provisioner"
REGISTRY_SERVICE = pb.DESCRIPTOR.services_by_name["TenantRegistryService"].full_name
PROVISIONING_SERVICE = pb.DESCRIPTOR.services_by_name["ProvisioningService"].full_name
log = get_logger(__name__)

#: The provisioner publishes provisioning progress on `trackai.status` and consumes nothing.
TOPOLOGY: Topology = status_topology()


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _pair(value: str) -> tuple[str, str]:
    owner, _, repository = value.partition("/")
    return owner, repository


def saga_config(settings: Settings) -> SagaConfig:
    return SagaConfig(
        base_domain=settings.cf_base_domain,
        script_url=settings.tracking_script_url,
        stape_timeout_s=settings.stape_timeout_s,
        stape_poll_interval_s=settings.poll_interval_s,
        stape_running_statuses=_csv(settings.stape_running_statuses),
        stape_failed_statuses=_csv(settings.stape_failed_statuses),
        domain_timeout_s=settings.domain_timeout_s,
        domain_poll_interval_s=settings.poll_interval_s,
        domain_ready_statuses=_csv(settings.stape_domain_ready_statuses),
        stape_zone=settings.stape_container_zone,
        stape_plan=settings.stape_container_plan,
        capi_template=_pair(settings.gtm_capi_template),
        pixel_template=_pair(settings.gtm_pixel_template),
        google_tag_id=settings.gtm_google_tag_id,
    )


class LazyGtm:
    """Builds the GTM client on first use, so a missing credential fails the GTM step with its
    fix instead of stopping the whole service (the registry must keep serving)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._api: GtmApi | None = None

    def __getattr__(self, name: str) -> object:
        if self._api is None:
            s = self._settings
            if not s.gtm_account_id:
                raise ProvisioningError(
                    "GTM_ACCOUNT_ID is empty. To fix: set it to the numeric id of the GTM account "
                    "(tagmanager.google.com → Admin → Account settings)"
                )
            self._api = GtmApi(
                s.gtm_api_url,
                s.gtm_account_id,
                gtm_credentials(s.gtm_credentials_json.get_secret_value()),
                requests_per_second=s.gtm_requests_per_second,
            )
        return getattr(self._api, name)


def build_providers(settings: Settings) -> tuple[Providers, list[object]]:
    """The adapters, and the ones with an ``aclose`` to call at shutdown."""
    meta = MetaGraph(
        settings.meta_graph_url,
        settings.meta_api_version,
        settings.meta_app_token.get_secret_value(),
    )
    stape = StapeApi(settings.stape_api_url, settings.stape_api_key.get_secret_value())
    dns = CloudflareDns(
        settings.cloudflare_api_url,
        settings.cloudflare_api_token.get_secret_value(),
        settings.cloudflare_zone_id,
    )
    gtm = LazyGtm(settings)
    return Providers(meta=meta, gtm=gtm, stape=stape, dns=dns), [meta, stape, dns]  # type: ignore[arg-type]


def build_registry(pool: Database, key_spec: str) -> TenantRegistry:
    """The registry on the PostgreSQL store, sealing with the ``TRACKAI_ENCRYPTION_KEYS`` ring."""
    return TenantRegistry(pool, KeyRing.parse(key_spec), PostgresTenantRepository())


def build_webhook_reader(settings: Settings) -> GrpcWebhookActivity:
    """Ingestion's webhook record, called as the provisioner's own gRPC identity."""
    channel = client_channel(
        settings.ingestion_grpc_target,
        settings.grpc_client_token.get_secret_value(),
        settings.grpc_tls,
    )
    return GrpcWebhookActivity(channel, settings.ingestion_timeout_s)


def build_provisioning(
    settings: Settings,
    pool: Database,
    registry: TenantRegistry,
    providers: Providers,
    webhooks: WebhookActivityReader,
) -> tuple[ProvisioningService, ReviewService]:
    """The saga and the review use cases, on the PostgreSQL run store and status outbox, both
    behind the webhook lock."""
    runs = PostgresRunRepository()
    gate = WebhookGate(webhooks)
    saga = ProvisioningService(
        pool,
        registry,
        providers,
        saga_config(settings),
        load_gtm_templates(),
        runs=runs,
        status=enqueue_status,
        gate=gate,
    )
    review = ReviewService(
        pool, registry, providers.meta, providers.gtm, runs=runs, status=enqueue_status, gate=gate
    )
    return saga, review


async def wire(settings: Settings, resources: Resources) -> Wiring:
    assert resources.pool is not None
    # httpx logs every request URL at INFO, and Graph's debug_token carries the customer's token
    # in its query string: keep those loggers at WARNING.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    registry = build_registry(resources.pool, settings.encryption_keys.get_secret_value())
    providers, closable = build_providers(settings)
    if settings.sandbox_providers:
        log.info("provisioning against the sandbox fakes", providers=settings.sandbox_providers)
    webhooks = build_webhook_reader(settings)
    closable = [*closable, webhooks]
    saga, review = build_provisioning(settings, resources.pool, registry, providers, webhooks)
    # Progress StatusUpdates wait in provisioner.outbox until the broker takes them.
    background = []
    if resources.amqp is not None:
        relay = OutboxRelay(resources.pool, resources.amqp, schema=SCHEMA)
        background.append(relay.run)

    async def close() -> None:
        for adapter in closable:
            await adapter.aclose()  # type: ignore[attr-defined]

    return Wiring(
        grpc_policy=GRPC_POLICY,
        grpc_services=[
            (
                REGISTRY_SERVICE,
                partial(
                    pb_grpc.add_TenantRegistryServiceServicer_to_server,
                    TenantRegistryServicer(registry, settings.default_rate_limit_per_minute),
                ),
            ),
            (
                PROVISIONING_SERVICE,
                partial(
                    pb_grpc.add_ProvisioningServiceServicer_to_server,
                    ProvisioningServicer(saga, review),
                ),
            ),
        ],
        background=background,
        on_shutdown=[close],
    )
