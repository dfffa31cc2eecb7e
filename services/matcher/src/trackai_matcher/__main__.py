"""`python -m trackai_matcher {serve,consume,migrate}`."""

from __future__ import annotations

import sys
from functools import partial

from trackai_kit.service import host, service_main
from trackai_matcher import bootstrap
from trackai_matcher.bootstrap import SCHEMA, TOPOLOGY
from trackai_matcher.settings import Settings


async def serve(settings: Settings) -> None:
    await host(settings, schema=SCHEMA, topology=TOPOLOGY, wire=partial(bootstrap.wire, settings))


async def consume(settings: Settings) -> None:
    """Consumer process: declares the topology and relays this service's outbox."""
    await host(
        settings,
        schema=SCHEMA,
        topology=TOPOLOGY,
        wire=partial(bootstrap.wire_consumer, settings),
        with_grpc=False,
        # Conversions leave no session state on pooled connections (no SET, session locks; the
        # outbox relay's LISTEN connection unlistens before release): asyncpg's RESET round
        # trip on every release would be one more per message.
        pool_reset_on_release=False,
    )


def main() -> int:
    return service_main("matcher", Settings, {"serve": serve, "consume": consume})


if __name__ == "__main__":
    sys.exit(main())
