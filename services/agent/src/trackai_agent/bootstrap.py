"""Composition root of the agent service."""

from __future__ import annotations

from trackai_agent.settings import Settings
from trackai_kit.service import Resources, Wiring

SCHEMA = "agent"
TOPOLOGY = None


async def wire(settings: Settings, resources: Resources) -> Wiring:
    """HTTP health/readiness and gRPC health; the service's APIs are registered here."""
    return Wiring()
