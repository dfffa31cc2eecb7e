"""Real parts for the dispatcher's tests: the Meta fake on an ephemeral port, a tenant registry
gRPC server answering GetMetaDestination (the dispatcher's only grant), a migrated database, a prefixed RabbitMQ topology, and the
consumer either in-process (background tasks on the test loop) or as a real subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from google.protobuf.json_format import ParseDict

from trackai.matcher.v1 import events_pb2 as matcher_pb
from trackai.provisioner.v1 import provisioner_service_pb2 as registry_pb
from trackai_dispatcher.adapters.broker import COPY_HEADER, DISPATCH_TYPE
from trackai_dispatcher.bootstrap import dispatch_topology, wire_consumer
from trackai_dispatcher.settings import Settings
from trackai_kit.amqp import AmqpClient
from trackai_kit.grpc import (
    GrpcServer,
    local_dev_token,
)
from trackai_kit.postgres import create_pool
from trackai_kit.service import Resources
from trackai_kit.settings import PostgresSettings
from trackai_kit.topology import CAPI_DISPATCH
from trackai_sandbox.meta import build_app
from trackai_sandbox.server import BackgroundServer
from trackai_sandbox.settings import SandboxSettings
from trackai_sandbox.testing import MetaSandboxClient, sample_purchase
from trackai_testing.registry import Destination, FakeTenantRegistry, serve_registry

GRPC_TOKEN = local_dev_token("dispatcher")
PIXEL = "1234567890"
META_TOKEN = "sandbox-token"
#: A scaled-down ladder (x0.2): the real 1-2-4-8-16 s one has its own slow test.
FAST_LADDER = "200,400,800,1600,3200"


# --- Meta fake --------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def meta_server() -> Iterator[BackgroundServer]:
    with BackgroundServer(build_app(SandboxSettings())) as server:
        yield server


@pytest.fixture
def meta(meta_server: BackgroundServer) -> Iterator[MetaSandboxClient]:
    with httpx.Client(base_url=meta_server.base_url, timeout=10) as http:
        client = MetaSandboxClient(http)
        client.reset()
        yield client
        client.reset()


# --- tenant registry (GetMetaDestination only) ------------------------------------------------
class FakeRegistry(FakeTenantRegistry):
    """The shared fake registry, with the dispatcher's destinations (``GetMetaDestination``)."""

    def add_tenant(
        self, pixel: str = PIXEL, token: str = META_TOKEN, funnels: dict[str, str] | None = None
    ) -> str:
        """A tenant whose default destination is ``pixel``; ``funnels`` maps funnel ids to
        their test event codes."""
        tenant_id = str(uuid.uuid4())
        self.destinations[tenant_id] = Destination(
            registry_pb.MetaDestination(pixel_id=pixel, access_token=token), dict(funnels or {})
        )
        return tenant_id


@dataclass
class Registry:
    servicer: FakeRegistry
    server: GrpcServer

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    servicer = FakeRegistry()
    async with serve_registry(servicer, "dispatcher", ["GetMetaDestination"]) as server:
        yield Registry(servicer, server)


# --- settings and the process under test ------------------------------------------------------
@dataclass
class Env:
    """Everything a dispatcher process needs to point at this test's real parts."""

    database_url: str
    amqp_url: str
    amqp_prefix: str
    meta_url: str
    registry_target: str
    overrides: dict[str, str] = field(default_factory=dict)

    def variables(self, **extra: str) -> dict[str, str]:
        return {
            "TRACKAI_ENV": "test",
            "DATABASE_URL": self.database_url,
            "AMQP_URL": self.amqp_url,
            "AMQP_PREFIX": self.amqp_prefix,
            "META_GRAPH_URL": self.meta_url,
            "META_API_VERSION": "v25.0",
            "PROVISIONER_GRPC_TARGET": self.registry_target,
            "GRPC_CLIENT_TOKEN": GRPC_TOKEN,
            "DISPATCHER_HTTP_PORT": "0",
            "DISPATCHER_BATCH_DEADLINE_MS": "50",
            "DISPATCHER_RETRY_DELAYS_MS": FAST_LADDER,
            "DISPATCHER_BREAKER_COOLDOWN_S": "2",
            "DISPATCHER_CLAIM_LEASE_S": "5",
            "LOG_JSON": "false",
            **self.overrides,
            **extra,
        }

    def settings(self, **extra: str) -> Settings:
        saved = dict(os.environ)
        try:
            os.environ.update(self.variables(**extra))
            return Settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)


@pytest.fixture
def env(
    database_url: str,
    amqp_url: str,
    amqp_prefix: str,
    meta_server: BackgroundServer,
    registry: Registry,
) -> Env:
    return Env(database_url, amqp_url, amqp_prefix, meta_server.base_url, registry.target)


@pytest.fixture
async def db(env: Env) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(PostgresSettings(url=env.database_url), schema="dispatcher")
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def broker(env: Env) -> AsyncIterator[AmqpClient]:
    settings = env.settings()
    async with AmqpClient(settings.amqp, connection_name="dispatcher-test") as client:
        await client.declare(dispatch_topology(settings))
        yield client


@dataclass
class Consumer:
    stop: asyncio.Event
    tasks: list[asyncio.Task[None]]
    settings: Settings

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)


Start = Callable[..., Awaitable[Consumer]]


@pytest.fixture
async def start_consumer(env: Env) -> AsyncIterator[Start]:
    """``await start_consumer(**settings)``: the consume process's background tasks, in-process."""
    started: list[tuple[Consumer, Resources, list[Callable[[], Awaitable[None]]]]] = []

    async def start(**extra: str) -> Consumer:
        settings = env.settings(**extra)
        pool = await create_pool(settings.postgres, schema="dispatcher")
        amqp = AmqpClient(settings.amqp, connection_name="dispatcher-consumer-test")
        await amqp.declare(dispatch_topology(settings))
        resources = Resources(settings, pool=pool, amqp=amqp)
        wiring = await wire_consumer(settings, resources)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(task(stop)) for task in wiring.background]
        consumer = Consumer(stop, tasks, settings)
        started.append((consumer, resources, list(wiring.on_shutdown)))
        return consumer

    yield start
    for consumer, resources, hooks in started:
        await consumer.close()
        for hook in hooks:
            await hook()
        assert resources.amqp is not None and resources.pool is not None
        await resources.amqp.close()
        await resources.pool.close()


@contextlib.contextmanager
def consumer_process(env: Env, log_path: Path, **extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m trackai_dispatcher consume`` as a real process (killed if still running)."""
    variables = {**os.environ, **env.variables(**extra)}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "trackai_dispatcher", "consume"],
            env=variables,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)


# --- events -----------------------------------------------------------------------------------
def event_id_for(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def dispatch_request(
    tenant_id: str,
    label: str,
    *,
    pixel: str = PIXEL,
    funnel_id: str = "",
    event_time: int | None = None,
    **overrides: Any,
) -> matcher_pb.DispatchRequest:
    now = int(time.time())
    event = sample_purchase(now, event_id=event_id_for(label), **overrides)
    if event_time is not None:
        event["event_time"] = event_time
    custom = event.get("custom_data")
    if isinstance(custom, dict) and "value" in custom:
        custom["value"] = (
            f"{custom['value']:.2f}" if isinstance(custom["value"], float) else custom["value"]
        )
    request = matcher_pb.DispatchRequest(
        message_id=uuid.uuid4().hex,
        tenant_id=tenant_id,
        funnel_id=funnel_id,
        pixel_id=pixel,
        match_stage=matcher_pb.MATCH_STAGE_DETERMINISTIC,
        match_score=1.0,
        emq=7.5,
        conversion_id=str(uuid.uuid4()),
    )
    ParseDict(event, request.event)
    request.create_time.GetCurrentTime()
    return request


async def publish(broker: AmqpClient, *requests: matcher_pb.DispatchRequest) -> None:
    await asyncio.gather(
        *(
            broker.publish(
                CAPI_DISPATCH,
                r.SerializeToString(),
                message_id=r.message_id,
                message_type=DISPATCH_TYPE,
                headers={COPY_HEADER: 0},
            )
            for r in requests
        )
    )


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


async def states(pool: asyncpg.Pool, tenant_id: str) -> dict[str, str]:
    rows = await pool.fetch(
        "SELECT event_id, state FROM dispatches WHERE tenant_id = $1", tenant_id
    )
    return {r["event_id"]: r["state"] for r in rows}


async def wait_states(
    pool: asyncpg.Pool, tenant_id: str, expected: int, settled: set[str], timeout_s: float = 20.0
) -> dict[str, str]:
    """Wait until ``expected`` events of the tenant are in one of the ``settled`` states."""
    found: dict[str, str] = {}

    async def done() -> bool:
        nonlocal found
        found = await states(pool, tenant_id)
        return sum(1 for s in found.values() if s in settled) >= expected

    await wait_for(done, timeout_s, f"{expected} events in {settled}")
    return found
