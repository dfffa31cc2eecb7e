"""`python -m trackai_provisioner {serve,migrate,rotate-keys}`."""

from __future__ import annotations

import sys
from functools import partial

from trackai_kit.postgres import create_pool
from trackai_kit.service import host, service_main
from trackai_provisioner.bootstrap import SCHEMA, TOPOLOGY, build_registry, wire
from trackai_provisioner.settings import Settings


async def serve(settings: Settings) -> None:
    # Readiness does not wait for RabbitMQ: ingestion and the dispatcher read tenant configs here
    # on their hot path, and progress updates wait in the outbox while the broker is away.
    await host(
        settings,
        schema=SCHEMA,
        topology=TOPOLOGY,
        wire=partial(wire, settings),
        ready_needs_broker=False,
    )


async def rotate_keys(settings: Settings) -> None:
    """Reseal every credential with the primary key (the first of TRACKAI_ENCRYPTION_KEYS)."""
    pool = await create_pool(settings.postgres, schema=SCHEMA)
    try:
        registry = build_registry(pool, settings.encryption_keys.get_secret_value())
        count = await registry.rotate_keys()
        sys.stdout.write(f"resealed {count} credential(s)\n")
    finally:
        await pool.close()


def main() -> int:
    return service_main("provisioner", Settings, {"serve": serve, "rotate-keys": rotate_keys})


if __name__ == "__main__":
    sys.exit(main())
