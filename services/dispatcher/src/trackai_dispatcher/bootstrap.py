"""Composition root of the dispatcher service."""

from __future__ import annotations

from trackai_dispatcher.settings import Settings
from trackai_kit import topology
from trackai_kit.service import Resources, Wiring

SCHEMA = "dispatcher"
TOPOLOGY = topology.dispatcher_topology().merge(topology.status_topology())


async def wire(settings: Settings, resources: Resources) -> Wiring:
    """HTTP health/readiness and gRPC health; the service's APIs are registered here."""
    return Wiring()


async def wire_consumer(settings: Settings, resources: Resources) -> Wiring:
    """Consumer process: declares the dispatch topology (queues, delay ladder, DLQ).

    The `capi-dispatch` handler is registered here with the delivery use case; until then
    messages wait, durable, in the quorum queue.
    """
    return Wiring()
