"""Composition root of the ingestion service."""

from __future__ import annotations

from trackai_ingestion.settings import Settings
from trackai_kit import topology
from trackai_kit.outbox import OutboxRelay
from trackai_kit.service import Resources, Wiring

SCHEMA = "ingestion"
TOPOLOGY = topology.ingestion_topology().merge(topology.status_topology())


async def wire(settings: Settings, resources: Resources) -> Wiring:
    """HTTP health/readiness and gRPC health; the service's APIs are registered here."""
    assert resources.pool is not None and resources.amqp is not None
    relay = OutboxRelay(resources.pool, resources.amqp, schema=SCHEMA)
    return Wiring(background=[relay.run])
