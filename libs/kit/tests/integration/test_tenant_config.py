"""The cached registry clients against a real gRPC server with a scripted registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial

import grpc
import pytest

from trackai.provisioner.v1 import provisioner_service_pb2 as pb
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as pb_grpc
from trackai_kit.grpc import AccessPolicy, rpcs, start_grpc_server, token_digest
from trackai_kit.settings import GrpcSettings
from trackai_kit.tenant_config import (
    RegistryClient,
    TenantConfigUnavailable,
    meta_destination_client,
    webhook_config_client,
)

pytestmark = pytest.mark.integration
TOKEN = "tc-token"
_REGISTRY = pb.DESCRIPTOR.services_by_name["TenantRegistryService"]


class ScriptedRegistry(pb_grpc.TenantRegistryServiceServicer):
    def __init__(self) -> None:
        self.calls = 0
        self.down = False
        self.delay = 0.0
        self.secret = "first-secret"
        self.known = {"acme"}

    async def _answer(self, request, context):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "registry restarting")
        if request.tenant_ref not in self.known:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no tenant")

    async def GetWebhookConfig(self, request, context):  # type: ignore[no-untyped-def]
        await self._answer(request, context)
        return pb.GetWebhookConfigResponse(
            config=pb.WebhookConfig(
                view=pb.TenantView(tenant=pb.Tenant(id="t-1", slug=request.tenant_ref)),
                gateways=[pb.GatewayCredential(gateway="kiwify", secret=self.secret)],
            )
        )

    async def GetMetaDestination(self, request, context):  # type: ignore[no-untyped-def]
        await self._answer(request, context)
        return pb.GetMetaDestinationResponse(
            destination=pb.MetaDestination(
                pixel_id=request.pixel_id, access_token=f"{self.secret}@{request.funnel_id}"
            )
        )


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Setup:
    registry: ScriptedRegistry
    client: RegistryClient[pb.WebhookConfig]
    clock: Clock = field(default_factory=Clock)
    target: str = ""


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    registry = ScriptedRegistry()
    server = await start_grpc_server(
        GrpcSettings(port=0, callers={"ingestion": token_digest(TOKEN)}),
        partial(pb_grpc.add_TenantRegistryServiceServicer_to_server, registry),
        [_REGISTRY.full_name],
        AccessPolicy.of({"ingestion": rpcs(_REGISTRY)}),
    )
    clock = Clock()
    client = webhook_config_client(
        f"127.0.0.1:{server.port}", TOKEN, ttl_s=30, negative_ttl_s=5, max_stale_s=600, clock=clock
    )
    try:
        yield Setup(registry, client, clock, f"127.0.0.1:{server.port}")
    finally:
        await client.close()
        await server.stop(0)


async def test_answers_are_cached_for_the_ttl(setup: Setup) -> None:
    first = await setup.client.get("acme")
    assert first is not None and first.gateways[0].secret == "first-secret"
    setup.registry.secret = "rotated"
    assert (await setup.client.get("acme")).gateways[0].secret == "first-secret"  # type: ignore[union-attr]
    assert setup.registry.calls == 1
    setup.clock.now += 31
    assert (await setup.client.get("acme")).gateways[0].secret == "rotated"  # type: ignore[union-attr]
    assert setup.registry.calls == 2


async def test_unknown_tenant_is_none_and_cached_briefly(setup: Setup) -> None:
    assert await setup.client.get("nobody") is None
    assert await setup.client.get("nobody") is None
    assert setup.registry.calls == 1
    setup.clock.now += 6
    assert await setup.client.get("nobody") is None
    assert setup.registry.calls == 2


async def test_concurrent_misses_make_one_call(setup: Setup) -> None:
    setup.registry.delay = 0.2
    results = await asyncio.gather(*(setup.client.get("acme") for _ in range(20)))
    assert all(r is not None for r in results)
    assert setup.registry.calls == 1


async def test_stale_answer_served_while_the_registry_is_down(setup: Setup) -> None:
    await setup.client.get("acme")
    setup.registry.down = True
    setup.clock.now += 120
    cached = await setup.client.get("acme")
    assert cached is not None and cached.view.tenant.slug == "acme"
    setup.clock.now += 600
    with pytest.raises(TenantConfigUnavailable):
        await setup.client.get("acme")


async def test_nothing_cached_and_registry_down_is_unavailable(setup: Setup) -> None:
    setup.registry.down = True
    with pytest.raises(TenantConfigUnavailable, match="nothing cached"):
        await setup.client.get("acme")


async def test_cache_is_bounded_least_recently_used_evicted_first(setup: Setup) -> None:
    small = webhook_config_client(setup.target, TOKEN, max_entries=2, clock=setup.clock)
    setup.registry.known = {"acme", "beta", "gamma"}
    try:
        for ref in ("acme", "beta"):
            await small.get(ref)
        await small.get("acme")  # used again: "beta" is now the least recently used
        await small.get("gamma")
        assert list(small._known.entries) == [("acme",), ("gamma",)]
        calls = setup.registry.calls
        await small.get("acme")
        assert setup.registry.calls == calls
        await small.get("beta")  # evicted: asked again
        assert setup.registry.calls == calls + 1
    finally:
        await small.close()


async def test_random_tenant_ids_do_not_evict_real_tenants(setup: Setup) -> None:
    # The production bounds scaled down: 10,000 entries against 10,000 random ids behaves alike.
    small = webhook_config_client(
        setup.target, TOKEN, max_entries=10, max_negative_entries=5, clock=setup.clock
    )
    try:
        await small.get("acme")
        for n in range(100):
            assert await small.get(f"made-up-{n}") is None
        calls = setup.registry.calls
        config = await small.get("acme")
        assert config is not None and config.view.tenant.slug == "acme"
        assert setup.registry.calls == calls  # still cached: no call to the registry
        assert len(small._unknown.entries) == 5  # the negative cache is bounded on its own
    finally:
        await small.close()


async def test_unknown_refs_are_remembered_apart_and_briefly(setup: Setup) -> None:
    small = webhook_config_client(
        setup.target, TOKEN, max_entries=1, max_negative_entries=2, clock=setup.clock
    )
    try:
        await small.get("acme")
        for ref in ("x1", "x2", "x3"):
            assert await small.get(ref) is None
        assert list(small._unknown.entries) == [("x2",), ("x3",)]
        assert small.cached("acme") is not None and small.cached("x3") is None
    finally:
        await small.close()


async def test_meta_destinations_are_cached_per_destination_and_forgotten_per_tenant(
    setup: Setup,
) -> None:
    client = meta_destination_client(setup.target, TOKEN, ttl_s=30, clock=setup.clock)
    try:
        first = await client.get("acme", "f1", "px")
        assert first is not None and first.access_token == "first-secret@f1"
        other = await client.get("acme", "f2", "px")
        assert other is not None and other.access_token == "first-secret@f2"
        setup.registry.secret = "rotated"
        assert (await client.get("acme", "f1", "px")).access_token == "first-secret@f1"  # type: ignore[union-attr]
        client.invalidate("acme")
        assert (await client.get("acme", "f1", "px")).access_token == "rotated@f1"  # type: ignore[union-attr]
        assert (await client.get("acme", "f2", "px")).access_token == "rotated@f2"  # type: ignore[union-attr]
    finally:
        await client.close()
