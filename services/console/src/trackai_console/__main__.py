"""`python -m trackai_console {serve,migrate}`."""

from __future__ import annotations

import sys
from functools import partial

from trackai_console import bootstrap
from trackai_console.bootstrap import SCHEMA, TOPOLOGY
from trackai_console.settings import Settings
from trackai_kit.service import host, service_main


async def serve(settings: Settings) -> None:
    # The console serves HTTP only (web UI and server-sent events); it has no gRPC API.
    await host(
        settings,
        schema=SCHEMA,
        topology=TOPOLOGY,
        wire=partial(bootstrap.wire, settings),
        with_grpc=False,
    )


def main() -> int:
    return service_main("console", Settings, {"serve": serve})


if __name__ == "__main__":
    sys.exit(main())
