"""Standard process shapes of a Track AI service: the `python -m trackai_<svc>` command line, and
`host()`, which wires PostgreSQL, RabbitMQ, HTTP health/readiness and the gRPC server once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import asyncpg
import grpc
import uvloop
from fastapi import FastAPI
from pydantic import ValidationError

from trackai_kit.amqp import AmqpClient
from trackai_kit.backoff import Backoff
from trackai_kit.grpc import AccessPolicy, GrpcServer, start_grpc_server
from trackai_kit.http import ReadinessCheck, create_app
from trackai_kit.logging import get_logger
from trackai_kit.postgres import create_pool, ping
from trackai_kit.runner import (
    DEFAULT_GRACE_S,
    ServiceCrashed,
    bootstrap_observability,
    run_service,
)
from trackai_kit.settings import ServiceSettings
from trackai_kit.topology import Topology

S = TypeVar("S", bound=ServiceSettings)
log = get_logger(__name__)

#: A function that adds one servicer to a gRPC server (the generated ``add_*_to_server``, bound).
GrpcRegistration = Callable[[grpc.aio.Server], None]
Background = Callable[[asyncio.Event], Awaitable[None]]


@dataclass
class Resources:
    """What `host()` opened for the service's composition root; closed by `host()` on exit."""

    settings: ServiceSettings
    pool: asyncpg.Pool | None = None
    amqp: AmqpClient | None = None


@dataclass
class Wiring:
    """What a service's bootstrap returns for `host()` to run."""

    grpc_services: Sequence[tuple[str, GrpcRegistration]] = ()
    #: Who may call which of those methods; the default grants nobody anything.
    grpc_policy: AccessPolicy = field(default_factory=lambda: AccessPolicy({}))
    background: Sequence[Background] = ()
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = ()
    configure_http: Callable[[FastAPI], None] | None = None


async def _declare_when_reachable(
    amqp: AmqpClient, topology: Topology, stop: asyncio.Event
) -> None:
    """Declare the topology as soon as the broker answers; retried with back-off until it does."""
    backoff = Backoff()
    while not stop.is_set():
        try:
            await amqp.declare(topology)
        except Exception as exc:
            log.warning("broker not reachable; topology not declared yet", error=repr(exc))
            await backoff.pause(stop)
            continue
        log.info("topology declared", queues=len(topology.all_queues()))
        return


async def host(
    settings: ServiceSettings,
    *,
    schema: str | None,
    topology: Topology | None,
    wire: Callable[[Resources], Awaitable[Wiring]],
    with_grpc: bool = True,
    ready_needs_broker: bool = True,
    pool_reset_on_release: bool = True,
    drain_s: float = DEFAULT_GRACE_S,
) -> None:
    """Open the shared resources, let ``wire`` build the service on them, and run until SIGTERM.

    The broker is not needed to start: the topology is declared as soon as it answers. With
    ``ready_needs_broker=False`` (ingestion, which keeps accepting into its outbox while RabbitMQ is
    down) a broker outage does not take the service out of its load balancer. ``drain_s`` bounds
    how long background tasks get to finish after SIGTERM (keep it under the pod's grace period).
    """
    bootstrap_observability(settings)
    resources = Resources(settings)
    checks: list[ReadinessCheck] = []
    background: list[Background] = []
    if schema is not None:
        pool = await create_pool(
            settings.postgres, schema=schema, reset_on_release=pool_reset_on_release
        )
        resources.pool = pool
        checks.append(("postgres", lambda: ping(pool)))
    if topology is not None:
        amqp = AmqpClient(settings.amqp, connection_name=settings.service_name)
        resources.amqp = amqp
        background.append(partial(_declare_when_reachable, amqp, topology))
        if ready_needs_broker:
            checks.append(("rabbitmq", amqp.ping))
    try:
        wiring = await wire(resources)
        app = create_app(
            settings.service_name,
            readiness=checks,
            expose_details=settings.is_development,
        )
        if wiring.configure_http is not None:
            wiring.configure_http(app)

        async def grpc_factory() -> GrpcServer:
            def register(server: grpc.aio.Server) -> None:
                for _, add in wiring.grpc_services:
                    add(server)

            return await start_grpc_server(
                settings.grpc,
                register,
                [name for name, _ in wiring.grpc_services],
                wiring.grpc_policy,
            )

        await run_service(
            http_app=app,
            http=settings.http,
            grpc_server_factory=grpc_factory if with_grpc else None,
            background=[*background, *wiring.background],
            on_shutdown=wiring.on_shutdown,
            grace_s=drain_s,
        )
    finally:
        if resources.amqp is not None:
            await resources.amqp.close()
        if resources.pool is not None:
            await resources.pool.close()


def migrate(service: str, settings: ServiceSettings) -> None:
    """Create the database if needed, apply the service's migrations up to head, and grant the
    service's own database role (``DATABASE_SERVICE_ROLE``) its rights on the schema."""
    from trackai_kit.migrations import ensure_database, grant_service_role, upgrade

    ensure_database(settings.database_url)
    upgrade(service, settings.database_url)
    if settings.database_service_role:
        grant_service_role(service, settings.database_url, settings.database_service_role)


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
    # uvloop, as the HTTP baselines run: every request is several socket round trips
    # (HTTP, PostgreSQL, RabbitMQ, gRPC), cheaper on its C event loop (measured: the dispatcher's
    # consumer spends about a third less CPU per event; docs/benchmarks.md).
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        asyncio.run(commands[args.command](settings))
    except KeyboardInterrupt:
        return 130
    except ServiceCrashed as exc:
        # Already logged with its cause during the orderly shutdown.
        sys.stderr.write(f"trackai_{service}: stopped after a failure: {exc}\n")
        return 1
    return 0
