"""`python -m trackai_ingestion {serve,relay,migrate}`."""

from __future__ import annotations

import sys
from functools import partial

from trackai_ingestion import bootstrap
from trackai_ingestion.bootstrap import SCHEMA, TOPOLOGY
from trackai_ingestion.settings import Settings
from trackai_kit.service import host, service_main


async def serve(settings: Settings) -> None:
    # Webhooks are accepted into the outbox while RabbitMQ is down: stay in the load balancer.
    await host(
        settings,
        schema=SCHEMA,
        topology=TOPOLOGY,
        wire=partial(bootstrap.wire, settings),
        ready_needs_broker=False,
        # Ingestion keeps no session state on pooled connections (no SET, LISTEN or session
        # locks), so the RESET round trip on every release is pure cost on the webhook path.
        pool_reset_on_release=False,
    )


async def relay(settings: Settings) -> None:
    """Outbox relay only (HTTP health and readiness on INGESTION_HTTP_PORT, no gRPC)."""
    await host(
        settings,
        schema=SCHEMA,
        topology=TOPOLOGY,
        wire=partial(bootstrap.wire_relay, settings),
        with_grpc=False,
    )


def main() -> int:
    return service_main("ingestion", Settings, {"serve": serve, "relay": relay})


if __name__ == "__main__":
    sys.exit(main())
