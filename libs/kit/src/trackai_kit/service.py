"""Standard process shapes of a Track AI service: the `python -m trackai_<svc>` command line, and
`host()`, which wires PostgreSQL, RabbitMQ, HTTP health/readiness and the gRPC server once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
import grpc
from fastapi import FastAPI
from pydantic import ValidationError

from trackai_kit.amqp import AmqpClient
from trackai_kit.grpc import GrpcServer, start_grpc_server
from trackai_kit.http import ReadinessCheck, create_app
from trackai_kit.postgres import create_pool, ping
from trackai_kit.runner import bootstrap_observability, run_service
from trackai_kit.settings import ServiceSettings
from trackai_kit.topology import Topology

S = TypeVar("S", bound=ServiceSettings)

#: A function that adds one servicer to a gRPC server (the generated ``add_*_to_server``, bound).
GrpcRegistration = Callable[[grpc.aio.Server], None]
Background = Callable[[asyncio.Event], Awaitable[None]]


@dataclass
class Resources:
    """What `host()` opened for the service's composition root; closed by `host()` on exit."""

    settings: ServiceSettings
    pool: asyncpg.Pool | None = None
    amqp: AmqpClient | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Wiring:
    """What a service's bootstrap returns for `host()` to run."""

    grpc_services: Sequence[tuple[str, GrpcRegistration]] = ()
    background: Sequence[Background] = ()
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = ()
    configure_http: Callable[[FastAPI], None] | None = None
    readiness: Sequence[ReadinessCheck] = ()


async def host(
    settings: ServiceSettings,
    *,
    schema: str | None,
    topology: Topology | None,
    wire: Callable[[Resources], Awaitable[Wiring]],
    with_grpc: bool = True,
) -> None:
    """Open the shared resources, let ``wire`` build the service on them, and run until SIGTERM."""
    bootstrap_observability(settings)
    resources = Resources(settings)
    checks: list[ReadinessCheck] = []
    if schema is not None:
        pool = await create_pool(settings.postgres, schema=schema)
        resources.pool = pool
        checks.append(("postgres", lambda: ping(pool)))
    if topology is not None:
        amqp = AmqpClient(settings.amqp, connection_name=settings.service_name)
        await amqp.connect()
        await amqp.declare(topology)
        resources.amqp = amqp
        checks.append(("rabbitmq", amqp.ping))
    try:
        wiring = await wire(resources)
        app = create_app(settings.service_name, readiness=[*checks, *wiring.readiness])
        if wiring.configure_http is not None:
            wiring.configure_http(app)

        async def grpc_factory() -> GrpcServer:
            def register(server: grpc.aio.Server) -> None:
                for _, add in wiring.grpc_services:
                    add(server)

            return await start_grpc_server(
                settings.grpc, register, [name for name, _ in wiring.grpc_services]
            )

        await run_service(
            http_app=app,
            http=settings.http,
            grpc_server_factory=grpc_factory if with_grpc else None,
            background=wiring.background,
            on_shutdown=wiring.on_shutdown,
        )
    finally:
        if resources.amqp is not None:
            await resources.amqp.close()
        if resources.pool is not None:
            await resources.pool.close()


def migrate(service: str, settings: ServiceSettings) -> None:
    """Create the database if needed and apply the service's migrations up to head."""
    from trackai_kit.migrations import ensure_database, upgrade

    ensure_database(settings.database_url)
    upgrade(service, settings.database_url)


def service_main(
    service: str,
    load_settings: type[S],
    commands: Mapping[str, Callable[[S], Coroutine[Any, Any, None]]],
    argv: Sequence[str] | None = None,
) -> int:
    """`python -m trackai_<svc> {serve,consume,migrate,...}`: one image, several processes."""
    parser = argparse.ArgumentParser(prog=f"python -m trackai_{service}")
    parser.add_argument("command", choices=["migrate", *commands])
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ValidationError as exc:
        problems = "; ".join(str(e.get("msg", e)) for e in exc.errors())
        sys.stderr.write(f"trackai_{service}: invalid configuration: {problems}\n")
        return 2
    if args.command == "migrate":
        migrate(service, settings)
        return 0
    try:
        asyncio.run(commands[args.command](settings))
    except KeyboardInterrupt:
        return 130
    return 0
