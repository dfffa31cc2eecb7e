"""`python -m trackai_dispatcher {serve,consume,migrate}`."""

from __future__ import annotations

import sys
from functools import partial

from trackai_dispatcher import bootstrap
from trackai_dispatcher.bootstrap import SCHEMA, TOPOLOGY
from trackai_dispatcher.settings import Settings
from trackai_kit.service import host, service_main


async def serve(settings: Settings) -> None:
    await host(settings, schema=SCHEMA, topology=TOPOLOGY, wire=partial(bootstrap.wire, settings))


async def consume(settings: Settings) -> None:
    """Consumer process: declares the topology and runs this service.s queue work."""
    await host(
        settings,
        schema=SCHEMA,
        topology=TOPOLOGY,
        wire=partial(bootstrap.wire_consumer, settings),
        with_grpc=False,
    )


def main() -> int:
    return service_main("dispatcher", Settings, {"serve": serve, "consume": consume})


if __name__ == "__main__":
    sys.exit(main())
