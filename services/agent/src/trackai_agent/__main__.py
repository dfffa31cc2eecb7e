"""`python -m trackai_agent {serve,migrate}`."""

from __future__ import annotations

import sys
from functools import partial

from trackai_agent import bootstrap
from trackai_agent.bootstrap import SCHEMA, TOPOLOGY
from trackai_agent.settings import Settings
from trackai_kit.service import host, service_main


async def serve(settings: Settings) -> None:
    await host(settings, schema=SCHEMA, topology=TOPOLOGY, wire=partial(bootstrap.wire, settings))


def main() -> int:
    return service_main("agent", Settings, {"serve": serve})


if __name__ == "__main__":
    sys.exit(main())
