"""Composition root of the console service."""

from __future__ import annotations

from trackai_console.settings import Settings
from trackai_kit.service import Resources, Wiring

SCHEMA = "console"
TOPOLOGY = None


async def wire(settings: Settings, resources: Resources) -> Wiring:
    """HTTP health/readiness and gRPC health; the service's APIs are registered here."""
    return Wiring()
