"""Composition root of the matcher service."""

from __future__ import annotations

from trackai_kit import topology
from trackai_kit.outbox import OutboxRelay
from trackai_kit.service import Resources, Wiring
from trackai_matcher.settings import Settings

SCHEMA = "matcher"
TOPOLOGY = topology.matcher_topology().merge(topology.status_topology())


async def wire(settings: Settings, resources: Resources) -> Wiring:
    """HTTP health/readiness and gRPC health; the service's APIs are registered here."""
    return Wiring()


async def wire_consumer(settings: Settings, resources: Resources) -> Wiring:
    """Consumer process: relays the outbox.

    The `ingest-events` handler is registered here with the matching use case; until then
    messages wait, durable, in the quorum queue.
    """
    assert resources.pool is not None and resources.amqp is not None
    relay = OutboxRelay(resources.pool, resources.amqp, schema=SCHEMA)
    return Wiring(background=[relay.run])
