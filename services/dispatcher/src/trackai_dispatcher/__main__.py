"""`python -m trackai_dispatcher {serve,consume,migrate}`."""

from __future__ import annotations

import sys
from functools import partial

from trackai_dispatcher import bootstrap
from trackai_dispatcher.bootstrap import SCHEMA, dispatch_topology
from trackai_dispatcher.settings import Settings
from trackai_kit.service import host, service_main


async def serve(settings: Settings) -> None:
    """gRPC DispatcherService and health; publishes replays to ``capi-dispatch``."""
    await host(
        settings,
        schema=SCHEMA,
        topology=dispatch_topology(settings),
        wire=partial(bootstrap.wire, settings),
    )


async def consume(settings: Settings) -> None:
    """Consumer process: batches ``capi-dispatch`` to Meta (HTTP health only, no gRPC)."""
    await host(
        settings,
        schema=SCHEMA,
        topology=dispatch_topology(settings),
        wire=partial(bootstrap.wire_consumer, settings),
        with_grpc=False,
        # The batcher's own hand-back deadline plus room to commit and nack; the chart's
        # terminationGracePeriodSeconds (45 s) covers both.
        drain_s=settings.shutdown_grace_s + 5,
    )


def main() -> int:
    return service_main("dispatcher", Settings, {"serve": serve, "consume": consume})


if __name__ == "__main__":
    sys.exit(main())
