"""A real provisioner gRPC server on an ephemeral port, on a freshly migrated database, and the
four provider fakes (Meta, Cloudflare, Stape, GTM) wired the way `make run` wires them."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import asyncpg
import grpc
import httpx
import pytest

from trackai.ingestion.v1 import ingestion_service_pb2 as ing
from trackai.ingestion.v1 import ingestion_service_pb2_grpc as ing_grpc
from trackai.provisioner.v1 import provisioner_service_pb2 as pb
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as pb_grpc
from trackai_kit.grpc import (
    AccessPolicy,
    client_channel,
    local_dev_callers,
    local_dev_token,
    rpcs,
    start_grpc_server,
)
from trackai_kit.postgres import create_pool
from trackai_kit.settings import GrpcSettings, PostgresSettings
from trackai_provisioner.bootstrap import (
    PROVISIONING_SERVICE,
    REGISTRY_SERVICE,
    build_providers,
    build_provisioning,
    build_registry,
    build_webhook_reader,
)
from trackai_provisioner.entrypoints.grpc_access import POLICY
from trackai_provisioner.entrypoints.grpc_provisioning import ProvisioningServicer
from trackai_provisioner.entrypoints.grpc_registry import TenantRegistryServicer
from trackai_provisioner.service_layer.provisioning import ProvisioningService
from trackai_provisioner.service_layer.registry import TenantRegistry
from trackai_provisioner.settings import Settings
from trackai_sandbox import cloudflare, gtm, stape
from trackai_sandbox.meta import build_app as build_meta
from trackai_sandbox.server import BackgroundServer
from trackai_sandbox.settings import SandboxSettings

#: The tests act as the operator (the `trackai` CLI) unless they call ``Provisioner.as_``.
TOKEN = local_dev_token("operator")


@dataclass
class Provisioner:
    stub: pb_grpc.TenantRegistryServiceStub
    registry: TenantRegistry
    pool: asyncpg.Pool
    port: int
    key_spec: str
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    def as_(self, identity: str) -> pb_grpc.TenantRegistryServiceStub:
        """A stub that calls with ``identity``'s development token."""
        channel = client_channel(f"127.0.0.1:{self.port}", local_dev_token(identity))
        self.channels.append(channel)
        return pb_grpc.TenantRegistryServiceStub(channel)


@pytest.fixture
async def provisioner(database_url: str) -> AsyncIterator[Provisioner]:
    key_spec = f"k1:{base64.b64encode(os.urandom(32)).decode()}"
    pool = await create_pool(PostgresSettings(url=database_url), schema="provisioner")
    registry = build_registry(pool, key_spec)
    servicer = TenantRegistryServicer(registry, default_rate_limit=100)
    server = await start_grpc_server(
        GrpcSettings(port=0, callers=local_dev_callers()),
        partial(pb_grpc.add_TenantRegistryServiceServicer_to_server, servicer),
        [REGISTRY_SERVICE],
        POLICY,
    )
    channel = client_channel(f"127.0.0.1:{server.port}", TOKEN)
    provisioner = Provisioner(
        pb_grpc.TenantRegistryServiceStub(channel), registry, pool, server.port, key_spec
    )
    try:
        yield provisioner
    finally:
        for opened in (channel, *provisioner.channels):
            await opened.close()
        await server.stop(0)
        await pool.close()


# Async: a grpc.aio channel binds to the running loop (a sync fixture finds none in the main
# thread once a test there has run asyncio.run, as test order under xdist showed).
@pytest.fixture
async def unauthenticated_channel(provisioner: Provisioner) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"127.0.0.1:{provisioner.port}")


DEMO_PIXEL = "1234567890"
DEMO_META_TOKEN = "sandbox-token"
META_APP_TOKEN = "100000000000001|sandbox-app-secret"
ZONE_NAME = "trackai.test"


@dataclass
class Sandboxes:
    meta: str
    cloudflare: str
    stape: str
    gtm: str

    def control(self, base: str, method: str, path: str, **kw: Any) -> Any:
        with httpx.Client(base_url=base, timeout=10) as http:
            resp = http.request(method, path, **kw)
            resp.raise_for_status()
            return resp.json()

    def reset(self) -> None:
        for base in (self.meta, self.cloudflare, self.stape, self.gtm):
            self.control(base, "POST", "/_sandbox/reset")
        self.control(self.gtm, "POST", "/_sandbox/quota", json={"qps": 1000})

    def cname_records(self) -> list[dict[str, Any]]:
        records = self.control(self.cloudflare, "GET", "/_sandbox/records")["data"]
        return [r for r in records if r.get("type") == "CNAME"]

    def stape_containers(self) -> list[dict[str, Any]]:
        return list(self.control(self.stape, "GET", "/_sandbox/containers")["data"])

    def gtm_containers(self) -> list[dict[str, Any]]:
        return list(self.control(self.gtm, "GET", "/_sandbox/containers")["data"])

    def calls(self, base: str, method: str, path: str = "") -> int:
        params = {"method": method, "path": path}
        return int(self.control(base, "GET", "/_sandbox/requests", params=params)["total"])


@pytest.fixture(scope="session")
def sandbox_servers() -> Iterator[Sandboxes]:
    with running_sandboxes() as boxes:
        yield boxes


@pytest.fixture
def sandboxes(sandbox_servers: Sandboxes) -> Sandboxes:
    """The fakes, emptied for this test."""
    sandbox_servers.reset()
    return sandbox_servers


@dataclass
class Provisioning:
    """A provisioner gRPC server with both services, on the fakes, with tenant "acme" ready."""

    registry_stub: pb_grpc.TenantRegistryServiceStub
    stub: pb_grpc.ProvisioningServiceStub
    saga: ProvisioningService
    pool: asyncpg.Pool
    boxes: Sandboxes
    tenant_id: str
    port: int
    ingestion: IngestionStub

    async def provision(self, funnel: str = "") -> list[pb.ProvisionTenantResponse]:
        call = self.stub.ProvisionTenant(
            pb.ProvisionTenantRequest(tenant_ref="acme", funnel_slug=funnel)
        )
        return [message async for message in call]


class IngestionStub(ing_grpc.IngestionServiceServicer):
    """Ingestion's ``GetWebhookActivity`` on a real gRPC server with the kit's caller checks: by
    default every tenant has one verified Kiwify webhook; a test sets ``verified`` (tenant id →
    count, 0 = none) and ``refused`` (tenant id → credentials) to lock it, or ``down``."""

    def __init__(self) -> None:
        self.verified: dict[str, int] = {}
        self.refused: dict[str, list[str]] = {}
        self.down = False
        self.calls = 0
        self.target = ""

    async def GetWebhookActivity(
        self, request: ing.GetWebhookActivityRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ing.GetWebhookActivityResponse:
        self.calls += 1
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "ingestion is restarting")
        count = self.verified.get(request.tenant_id, 1)
        answer = ing.GetWebhookActivityResponse()
        if count:
            answer.gateways.add(gateway="kiwify", received=count, by_outcome={"test": count})
        for credential in self.refused.get(request.tenant_id, []):
            answer.refused.add(gateway="kiwify", credential=credential, count=2)
        return answer


@pytest.fixture
async def ingestion_stub() -> AsyncIterator[IngestionStub]:
    stub = IngestionStub()
    service = ing.DESCRIPTOR.services_by_name["IngestionService"]
    server = await start_grpc_server(
        GrpcSettings(port=0, callers=local_dev_callers()),
        partial(ing_grpc.add_IngestionServiceServicer_to_server, stub),
        [service.full_name],
        # As ingestion's own allow-list grants it (the operator's token runs some processes).
        AccessPolicy.of({"provisioner": rpcs(service), "operator": rpcs(service)}),
    )
    stub.target = f"127.0.0.1:{server.port}"
    try:
        yield stub
    finally:
        await server.stop(0)


def saga_env_values(boxes: Sandboxes, ingestion: IngestionStub) -> dict[str, Any]:
    return {
        "CF_BASE_DOMAIN": ZONE_NAME,
        "CLOUDFLARE_API_URL": f"{boxes.cloudflare}/client/v4",
        "CLOUDFLARE_API_TOKEN": cloudflare.DEMO_TOKEN,
        "CLOUDFLARE_ZONE_ID": cloudflare.DEMO_ZONE_ID,
        "STAPE_API_URL": boxes.stape,
        "STAPE_API_KEY": stape.DEMO_KEY,
        "GTM_API_URL": boxes.gtm,
        "GTM_ACCOUNT_ID": gtm.DEMO_ACCOUNT_ID,
        "GTM_CREDENTIALS_JSON": "sandbox-access-token",
        "GTM_REQUESTS_PER_SECOND": 1000,
        "META_GRAPH_URL": boxes.meta,
        "META_APP_TOKEN": META_APP_TOKEN,
        "PROVISIONING_POLL_INTERVAL_S": 0.1,
        "PROVISIONING_STAPE_TIMEOUT_S": 20,
        "PROVISIONING_DOMAIN_TIMEOUT_S": 20,
        "TRACKAI_ENV": "test",
        "INGESTION_GRPC_TARGET": ingestion.target,
    }


def saga_settings(boxes: Sandboxes, ingestion: IngestionStub, **overrides: Any) -> Settings:
    return Settings(**{**saga_env_values(boxes, ingestion), **overrides})


@contextlib.asynccontextmanager
async def provisioning_server(
    database_url: str, boxes: Sandboxes, ingestion: IngestionStub, **overrides: Any
) -> AsyncIterator[Provisioning]:
    settings = saga_settings(boxes, ingestion, **overrides)
    pool = await create_pool(PostgresSettings(url=database_url), schema="provisioner")
    registry = build_registry(pool, settings.encryption_keys.get_secret_value())
    providers, closable = build_providers(settings)
    webhooks = build_webhook_reader(settings)
    closable = [*closable, webhooks]
    saga, review = build_provisioning(settings, pool, registry, providers, webhooks)

    def register(server: grpc.aio.Server) -> None:
        pb_grpc.add_TenantRegistryServiceServicer_to_server(
            TenantRegistryServicer(registry, 100), server
        )
        pb_grpc.add_ProvisioningServiceServicer_to_server(
            ProvisioningServicer(saga, review), server
        )

    server = await start_grpc_server(
        GrpcSettings(port=0, callers=local_dev_callers()),
        register,
        [REGISTRY_SERVICE, PROVISIONING_SERVICE],
        POLICY,
    )
    channel = client_channel(f"127.0.0.1:{server.port}", TOKEN)
    try:
        tenant = await registry.create_tenant(name="Acme", slug="acme")
        await registry.create_funnel(
            "acme",
            name="Launch",
            slug="launch",
            landing_url="https://acme.example.com/",
            checkout_domains=["pay.kiwify.com.br"],
            test_event_code="TEST12345",
        )
        await registry.set_meta_credential(
            "acme", pixel_id=DEMO_PIXEL, access_token=DEMO_META_TOKEN
        )
        # Its webhooks reach ingestion (the stub says one verified Kiwify webhook arrived).
        await registry.set_gateway_credential(
            "acme", gateway="kiwify", secret="kiwify-webhook-token"
        )
        yield Provisioning(
            pb_grpc.TenantRegistryServiceStub(channel),
            pb_grpc.ProvisioningServiceStub(channel),
            saga,
            pool,
            boxes,
            str(tenant.id),
            server.port,
            ingestion,
        )
    finally:
        await channel.close()
        await server.stop(0)
        for adapter in closable:
            await adapter.aclose()  # type: ignore[attr-defined]
        await pool.close()


@contextlib.contextmanager
def running_sandboxes(stape_ready_after_s: float = 0.3) -> Iterator[Sandboxes]:
    settings = SandboxSettings()
    with contextlib.ExitStack() as stack:
        meta = stack.enter_context(BackgroundServer(build_meta(settings)))
        cf = stack.enter_context(
            BackgroundServer(
                cloudflare.build_app(
                    settings, cloudflare.CloudflareFakeSettings(zone_name=ZONE_NAME)
                )
            )
        )
        st = stack.enter_context(
            BackgroundServer(
                stape.build_app(
                    settings,
                    stape.StapeFakeSettings(
                        ready_after_s=stape_ready_after_s, dns_resolver_url=cf.base_url
                    ),
                )
            )
        )
        gt = stack.enter_context(BackgroundServer(gtm.build_app(settings, gtm.GtmFakeSettings())))
        boxes = Sandboxes(meta.base_url, cf.base_url, st.base_url, gt.base_url)
        boxes.reset()
        yield boxes


@pytest.fixture
def provisioning(database_url: str, sandboxes: Sandboxes, ingestion_stub: IngestionStub) -> Any:
    """``async with provisioning(**settings) as prov``: a server on the fakes for this test."""
    return partial(provisioning_server, database_url, sandboxes, ingestion_stub)


@pytest.fixture
def saga_env(sandboxes: Sandboxes, ingestion_stub: IngestionStub) -> dict[str, str]:
    """The environment a provisioner process needs to provision against the fakes."""
    return {key: str(value) for key, value in saga_env_values(sandboxes, ingestion_stub).items()}


async def run_cli(port: int, *args: str) -> tuple[int, str, str]:
    """`trackai ARGS...` as a separate process against the provisioner on ``port``."""
    env = {
        **os.environ,
        "PROVISIONER_GRPC_TARGET": f"127.0.0.1:{port}",
        "GRPC_CLIENT_TOKEN": TOKEN,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "trackai_cli.main",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return int(proc.returncode or 0), out.decode(), err.decode()
