"""`python -m trackai_console {serve,migrate}`."""

from __future__ import annotations

import sys
from functools import partial

from trackai_console import bootstrap
from trackai_console.bootstrap import SCHEMA, TOPOLOGY
from trackai_console.settings import Settings
from trackai_kit.service import host, service_main


async def serve(settings: Settings) -> None:
    # HTTP: the web UI; gRPC: account administration for `trackai user ...`.
    await host(
        settings,
        schema=SCHEMA,
        topology=TOPOLOGY,
        wire=partial(bootstrap.wire, settings),
    )


def main() -> int:
    return service_main("console", Settings, {"serve": serve})


if __name__ == "__main__":
    sys.exit(main())
