"""Composition root of the dispatcher: the ``capi-dispatch`` consumer (``consume``) and the
DispatcherService gRPC API (``serve``) on the shared resources."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from trackai.dispatcher.v1 import dispatcher_service_pb2 as pb
from trackai.dispatcher.v1 import dispatcher_service_pb2_grpc as pb_grpc
from trackai_dispatcher.adapters.broker import DispatchPublisher, StatusPublisher
from trackai_dispatcher.adapters.delivery_store import PostgresDeliveryStore, PostgresHealthStore
from trackai_dispatcher.adapters.destinations import RegistryDestinations
from trackai_dispatcher.adapters.meta import MetaClient
from trackai_dispatcher.adapters.query_store import PostgresDeadLetterStore, PostgresReader
from trackai_dispatcher.domain.breaker import BreakerPolicy
from trackai_dispatcher.domain.model import RetryLadder
from trackai_dispatcher.entrypoints.consumer import ConsumerTask, MonitorTask
from trackai_dispatcher.entrypoints.grpc_access import POLICY as GRPC_POLICY
from trackai_dispatcher.entrypoints.grpc_dispatcher import DispatcherServicer
from trackai_dispatcher.service_layer.delivery import Dispatcher
from trackai_dispatcher.service_layer.dlq import DeadLetters
from trackai_dispatcher.service_layer.monitor import Monitor
from trackai_dispatcher.service_layer.ports import DestinationResolver, MetaPoster, Notifier
from trackai_dispatcher.service_layer.queries import Queries
from trackai_dispatcher.settings import Settings
from trackai_kit import topology
from trackai_kit.amqp import RetryPolicy
from trackai_kit.retention import RetentionTask, Rule, retention_service
from trackai_kit.service import Resources, Wiring
from trackai_kit.tenant_config import meta_destination_client

SCHEMA = "dispatcher"
RETENTION_INTERVAL_S = 3600.0
DISPATCHER_SERVICE = pb.DESCRIPTOR.services_by_name["DispatcherService"].full_name


def dispatch_topology(settings: Settings) -> topology.Topology:
    """``capi-dispatch``, one TTL queue per step of the configured retry ladder and one for
    parked events (the breaker's cool-down), the status exchange."""
    delays = topology.delay_queues(
        topology.CAPI_DISPATCH, tuple(sorted({*settings.retry_ladder_ms, settings.park_delay_ms}))
    )
    return topology.dispatcher_topology().merge(delays)


def retention_rules(settings: Settings) -> list[Rule]:
    """What the dispatcher keeps, and for how long (docs/runbooks/retention.md)."""
    day = timedelta(days=1)
    return [
        # Cascades to dispatch_attempt_events.
        Rule(
            "attempts",
            "dispatcher.dispatch_attempts",
            "started_at",
            settings.attempt_retention_days * day,
        ),
        Rule(
            "event_network",
            "dispatcher.dispatches",
            "created_at",
            settings.raw_network_retention_days * day,
            condition="payload->'user_data' ?| array['client_ip_address', 'client_user_agent']",
            blank="payload = payload #- '{user_data,client_ip_address}'"
            " #- '{user_data,client_user_agent}'",
        ),
    ]


def build_dispatcher(
    settings: Settings,
    resources: Resources,
    meta: MetaPoster,
    destinations: DestinationResolver,
    notifier: Notifier,
) -> Dispatcher:
    assert resources.pool is not None and resources.amqp is not None
    return Dispatcher(
        PostgresDeliveryStore(resources.pool),
        meta,
        destinations,
        DispatchPublisher(resources.amqp),
        notifier,
        policy=BreakerPolicy(
            threshold=settings.breaker_threshold,
            cooldown=timedelta(seconds=settings.breaker_cooldown_s),
            # Long enough for one probe POST; a crashed prober is replaced after it.
            probe_lease=timedelta(seconds=max(5.0, 4 * settings.meta_timeout_s)),
        ),
        ladder=RetryLadder(settings.retry_ladder_ms, park_delays_ms=(settings.park_delay_ms,)),
        claim_lease_s=settings.claim_lease_s,
        concurrency=settings.concurrency,
    )


async def wire(settings: Settings, resources: Resources) -> Wiring:
    """``serve``: DispatcherService (attempts, event state, DLQ list and replay) and the
    operator's RetentionService (the `consume` process's sweeps, on demand)."""
    assert resources.pool is not None and resources.amqp is not None
    dead_letters = DeadLetters(
        PostgresDeadLetterStore(resources.pool), DispatchPublisher(resources.amqp)
    )
    servicer = DispatcherServicer(Queries(PostgresReader(resources.pool)), dead_letters)
    return Wiring(
        grpc_policy=GRPC_POLICY,
        grpc_services=[
            (
                DISPATCHER_SERVICE,
                partial(pb_grpc.add_DispatcherServiceServicer_to_server, servicer),
            ),
            retention_service("dispatcher", resources.pool, retention_rules(settings)),
        ],
    )


async def wire_consumer(settings: Settings, resources: Resources) -> Wiring:
    """``consume``: the batching consumer of ``capi-dispatch`` and the monitor."""
    assert resources.pool is not None and resources.amqp is not None
    meta = MetaClient(
        settings.meta_graph_url,
        settings.meta_api_version,
        timeout_s=settings.meta_timeout_s,
        partner_agent=settings.partner_agent,
        max_connections=max(8, 2 * settings.concurrency),
    )
    registry = meta_destination_client(
        settings.provisioner_target,
        settings.grpc_client_token.get_secret_value(),
        tls=settings.grpc_tls,
    )
    notifier = StatusPublisher(
        settings.amqp_url,
        resources.amqp.name(topology.STATUS_EXCHANGE),
        timeout_s=settings.amqp.publish_timeout_s,
    )
    dispatcher = build_dispatcher(
        settings, resources, meta, RegistryDestinations(registry), notifier
    )
    consumer = ConsumerTask(
        dispatcher,
        resources.amqp,
        settings.amqp_url,
        prefetch=settings.effective_prefetch,
        batch_max=settings.batch_max,
        deadline_s=settings.batch_deadline_ms / 1000,
        workers=settings.pipeline,
        shutdown_grace_s=settings.shutdown_grace_s,
        retry=RetryPolicy(tuple(settings.retry_ladder_ms)),
    )
    monitor = MonitorTask(
        Monitor(
            PostgresHealthStore(resources.pool),
            notifier,
            outage_destinations=settings.outage_destinations,
            outage_window_s=settings.outage_window_s,
        )
    )
    retention = RetentionTask(
        resources.pool, retention_rules(settings), interval_s=RETENTION_INTERVAL_S
    )
    return Wiring(
        background=[consumer, monitor, retention],
        on_shutdown=[meta.close, registry.close, notifier.close],
    )
