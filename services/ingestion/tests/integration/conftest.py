"""Integration fixtures of the webhook receiver: a real gRPC server with an in-memory tenant
registry servicer (serving GetWebhookConfig, ingestion's only grant, to the kit's real cached
client; the provisioner's own registry is tested in its suite), a migrated database, and the
ingestion HTTP app driven through httpx's ASGI transport.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI

from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai_ingestion.bootstrap import Components, build_components
from trackai_ingestion.settings import Settings
from trackai_kit import migrations
from trackai_kit.grpc import (
    GrpcServer,
    local_dev_token,
)
from trackai_kit.http import create_app
from trackai_testing.plugin import in_thread, shared_redis_url
from trackai_testing.registry import FakeTenantRegistry, serve_registry

from ..conftest import hmac_hex

TOKEN = local_dev_token("ingestion")
#: Secrets of the test tenants, one per gateway (the fixtures' own values where they carry one).
SECRETS = {
    "kiwify": "9ch0bpzogu9",
    "perfectpay": "0123456789abcdef0123456789abcdef",
    "hotmart": "hottok-of-the-test-account",
    "eduzz": "eduzz-signing-secret",
    "cakto": "f8c3de3d-1fea-4d7c-a8b0-29f63c4c3454",
    # Monetizze, Braip and Ticto carry theirs in the fixtures; Greenn's rides in a header.
    "monetizze": "ffffffffffffffffffffffffffffffff",
    "braip": "0000000000000000000000000000000000000000",
    "ticto": "REDACTED_TICTO_WEBHOOK_TOKEN",
    "greenn": "greenn-shared-secret",
}


def credentials(gateway: str, raw: bytes, secret: str | None = None) -> dict[str, Any]:
    """Headers and query a genuine request of ``gateway`` carries for ``raw`` (body-token gateways
    carry theirs inside the fixture)."""
    key = secret or SECRETS[gateway]
    if gateway == "kiwify":
        return {"params": {"signature": hmac_hex("sha1", key, raw)}}
    if gateway == "hotmart":
        return {"headers": {"X-HOTMART-HOTTOK": key}}
    if gateway == "eduzz":
        return {"headers": {"x-signature": hmac_hex("sha256", key, raw)}}
    if gateway == "greenn":
        return {"headers": {"token": key}}
    return {}


@dataclass
class Registry:
    """A real gRPC TenantRegistryService on an ephemeral port, configurable per test."""

    server: GrpcServer
    servicer: FakeTenantRegistry

    @property
    def configs(self) -> dict[str, prov.WebhookConfig]:
        return self.servicer.webhook_configs

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def add_tenant(
        self,
        *,
        rate_limit: int = 10_000,
        signing_secrets: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
        allowed_domains: tuple[str, ...] = (),
    ) -> str:
        tenant_id = str(uuid.uuid4())
        gateways = [
            prov.GatewayCredential(
                gateway=name, secret=secret, signing_secret=(signing_secrets or {}).get(name, "")
            )
            for name, secret in (secrets if secrets is not None else SECRETS).items()
        ]
        self.configs[tenant_id] = prov.WebhookConfig(
            view=prov.TenantView(
                tenant=prov.Tenant(
                    id=tenant_id,
                    slug=f"t{tenant_id[:8]}",
                    rate_limit_per_minute=rate_limit,
                    allowed_domains=allowed_domains,
                )
            ),
            gateways=gateways,
        )
        return tenant_id


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """A fresh database with only this service's schema: other services' migrations (built in
    parallel) cannot break these tests."""
    in_thread(lambda: migrations.upgrade("ingestion", empty_database_url))
    return empty_database_url


@pytest_asyncio.fixture(loop_scope="session")
async def registry() -> AsyncIterator[Registry]:
    servicer = FakeTenantRegistry()
    async with serve_registry(servicer, "ingestion", ["GetWebhookConfig"]) as server:
        yield Registry(server, servicer)


def ingestion_settings(database_url: str, registry_target: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "PROVISIONER_GRPC_TARGET": registry_target,
        "GRPC_CLIENT_TOKEN": TOKEN,
        "REDIS_URL": shared_redis_url(),
        "TRACKAI_ENV": "test",
        **overrides,
    }
    return Settings(**values)


@dataclass
class App:
    client: httpx.AsyncClient
    components: Components


AppFactory = Callable[..., Awaitable[App]]


@pytest_asyncio.fixture(loop_scope="session")
async def make_app(
    database_url: str, registry: Registry, pg_pool: Any
) -> AsyncIterator[AppFactory]:
    """``await make_app(**settings)``: an ingestion HTTP app (its own pool, limiter, registry
    client) on the test database; several calls give several independent replicas."""
    opened: list[App] = []
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def make(
        *, real_http: bool = False, pool: asyncpg.Pool | None = None, **overrides: Any
    ) -> App:
        """``real_http``: served by uvicorn on a free port (the real HTTP stack: keep-alive,
        streaming bodies, what a gateway's client sees), else driven through ASGI in-process.
        ``pool``: the app's database pool (default: a new one on the test database)."""
        settings = ingestion_settings(database_url, registry.target, **overrides)
        pool = pool or await pg_pool(database_url, schema="ingestion")
        components = build_components(settings, pool)
        # As the real process does in test: `/openapi.json` served (the schemathesis run reads it).
        app: FastAPI = create_app("ingestion", expose_details=settings.is_development)
        components.configure_http(app, settings)
        if real_http:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            server = uvicorn.Server(
                uvicorn.Config(
                    app,
                    log_config=None,
                    lifespan="off",
                    access_log=False,
                    # A test that failed with a request still open must not hang its teardown.
                    timeout_graceful_shutdown=2,
                )
            )
            task = asyncio.create_task(server.serve(sockets=[sock]))
            servers.append((server, task))
            while not server.started and not task.done():
                await asyncio.sleep(0.01)
            client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}")
        else:
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 4711)),
                base_url="http://ingestion.test",
            )
        opened.append(App(client, components))
        return opened[-1]

    yield make
    for app in opened:
        await app.client.aclose()
    for server, task in servers:
        server.should_exit = True
        await task
    for app in opened:
        for close in app.components.closers:
            await close()


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_app: AppFactory) -> App:
    return await make_app()


@pytest.fixture
def tenant(registry: Registry) -> str:
    return registry.add_tenant()
