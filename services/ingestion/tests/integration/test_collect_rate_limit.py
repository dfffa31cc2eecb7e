"""Rate limits of the collect endpoint, over real HTTP (uvicorn) with real Redis and PostgreSQL:
a ceiling per client address within a tenant and one per tenant, 429 + Retry-After with nothing
stored, one log line per key and minute, and tracking that goes on when Redis is down. The
defaults are checked against real Redis to let a landing page's real bursts through."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from trackai_ingestion.adapters.rate_limit import RedisRateLimiter
from trackai_ingestion.service_layer.collect_limits import (
    DEFAULT_CLIENT_LIMIT_PER_MINUTE,
    DEFAULT_TENANT_LIMIT_PER_MINUTE,
    CollectRateLimit,
)
from trackai_ingestion.settings import Settings
from trackai_testing.plugin import shared_redis_url

from .conftest import App, AppFactory, Registry

pytestmark = pytest.mark.integration

ORIGIN = "https://lp.shop.example.com"
#: uvicorn sees the test client at 127.0.0.1: trusted, so X-Forwarded-For names the visitor.
PROXY = "127.0.0.1"


def _visitor(n: int) -> str:
    """A public (globally routable) IPv4 address per ``n``."""
    return f"177.67.{n // 250}.{n % 250 + 1}"


async def _hit(app: App, tenant: str, visitor: str, **headers: str) -> httpx.Response:
    body = (
        '{"type":"page_view","session_id":"taSESSION0000000000001",'
        f'"event_id":"ev{uuid.uuid4().hex}","page_url":"{ORIGIN}/"}}'
    )
    return await app.client.post(
        f"/api/v1/collect/{tenant}",
        content=body,
        headers={
            "content-type": "text/plain;charset=UTF-8",
            "origin": ORIGIN,
            "x-forwarded-for": visitor,
            **headers,
        },
    )


async def _stored(database_url: str, tenant: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM ingestion.events WHERE tenant_id = $1::uuid", tenant
        )
        return count
    finally:
        await conn.close()


async def _app(make_app: AppFactory, **overrides: Any) -> App:
    return await make_app(real_http=True, trusted_proxies=PROXY, **overrides)


def _tenant(registry: Registry) -> str:
    return registry.add_tenant(allowed_domains=("shop.example.com",))


async def test_one_address_is_cut_off_and_others_go_on(
    make_app: AppFactory, registry: Registry, database_url: str
) -> None:
    app = await _app(make_app, collect_ip_rate_limit_per_minute=5)
    tenant, other_tenant = _tenant(registry), _tenant(registry)
    flooder, visitor = _visitor(1), _visitor(2)
    with capture_logs() as logs:
        answers = [await _hit(app, tenant, flooder) for _ in range(9)]
    assert [a.status_code for a in answers] == [204] * 5 + [429] * 4
    refused = answers[5]
    assert refused.json()["error"] == "client_rate_limited"
    # 5 per minute: the next slot is one emission interval (12 s) after the burst.
    assert 1 <= int(refused.headers["Retry-After"]) <= 12
    # The browser may read the answer (CORS), as for any other refusal.
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    # Another address, and the same address on another tenant, are not affected.
    assert (await _hit(app, tenant, visitor)).status_code == 204
    assert (await _hit(app, other_tenant, flooder)).status_code == 204
    # Nothing refused was stored.
    assert await _stored(database_url, tenant) == 6
    # One line for the four refusals, naming the address to block upstream.
    lines = [e for e in logs if e["event"] == "browser hits rate limited for one client"]
    assert [(e["tenant_id"], e["client"]) for e in lines] == [(tenant, flooder)]


async def test_the_tenant_ceiling_holds_across_addresses_and_replicas(
    make_app: AppFactory, registry: Registry, database_url: str
) -> None:
    settings = {"collect_ip_rate_limit_per_minute": 2, "collect_tenant_rate_limit_per_minute": 4}
    replica_a, replica_b = await _app(make_app, **settings), await _app(make_app, **settings)
    tenant = _tenant(registry)
    with capture_logs() as logs:
        # A flood from one address: 2 accepted, the 4 others refused without using up the
        # tenant's budget, which real visitors share ...
        flood = [await _hit(replica_a, tenant, _visitor(10)) for _ in range(6)]
        assert [a.status_code for a in flood] == [204] * 2 + [429] * 4
        # ... so two more visitors fit, on either replica ...
        assert (await _hit(replica_b, tenant, _visitor(11))).status_code == 204
        assert (await _hit(replica_a, tenant, _visitor(12))).status_code == 204
        # ... and then the tenant is full, whoever sends.
        for replica, n in ((replica_b, 13), (replica_a, 14), (replica_b, 15)):
            full = await _hit(replica, tenant, _visitor(n))
            assert full.status_code == 429
            assert full.json()["error"] == "rate_limited"
            assert 1 <= int(full.headers["Retry-After"]) <= 15  # 60 s / 4
    assert await _stored(database_url, tenant) == 4
    # Once per key and replica within the minute.
    per_tenant = [e for e in logs if e["event"] == "browser hits rate limited for the tenant"]
    assert [e["tenant_id"] for e in per_tenant] == [tenant, tenant]
    # Another tenant has its own budget.
    assert (await _hit(replica_a, _tenant(registry), _visitor(16))).status_code == 204


async def test_senders_that_are_not_public_addresses_share_only_the_tenant_ceiling(
    make_app: AppFactory, registry: Registry
) -> None:
    # A private address (a proxy left out of INGESTION_TRUSTED_PROXIES, or internal traffic) would
    # put every visitor behind it into one budget: it is not limited per address.
    app = await _app(
        make_app, collect_ip_rate_limit_per_minute=2, collect_tenant_rate_limit_per_minute=6
    )
    tenant = _tenant(registry)
    answers = [await _hit(app, tenant, "10.1.2.3") for _ in range(7)]
    assert [a.status_code for a in answers] == [204] * 6 + [429]
    assert answers[-1].json()["error"] == "rate_limited"


async def test_addresses_of_one_ipv6_64_share_a_budget(
    make_app: AppFactory, registry: Registry
) -> None:
    app = await _app(make_app, collect_ip_rate_limit_per_minute=2)
    tenant = _tenant(registry)
    assert (await _hit(app, tenant, "2804:14c:65a1:4001::1")).status_code == 204
    assert (await _hit(app, tenant, "2804:14c:65a1:4001:a::2")).status_code == 204
    # A browser rotating its temporary address within its /64 does not get a new budget ...
    assert (await _hit(app, tenant, "2804:14c:65a1:4001:b::3")).status_code == 429
    # ... another subscriber's /64 does.
    assert (await _hit(app, tenant, "2804:14c:65a1:4002::1")).status_code == 204


async def test_tracking_goes_on_when_redis_is_down(
    make_app: AppFactory, registry: Registry, database_url: str
) -> None:
    app = await _app(
        make_app,
        REDIS_URL="redis://127.0.0.1:1/0",
        collect_ip_rate_limit_per_minute=1,
        collect_tenant_rate_limit_per_minute=1,
    )
    tenant = _tenant(registry)
    with capture_logs() as logs:
        answers = [await _hit(app, tenant, _visitor(20)) for _ in range(4)]
    assert [a.status_code for a in answers] == [204] * 4
    assert await _stored(database_url, tenant) == 4
    warnings = [
        e
        for e in logs
        if e["event"] == "rate limiter unavailable; accepting browser hits without a limit"
    ]
    assert len(warnings) == 1  # then silent for the cool-down


# -- The defaults, against real Redis (no HTTP: thousands of decisions, not thousands of rows).


@pytest_asyncio.fixture(loop_scope="session")
async def default_limits() -> AsyncIterator[CollectRateLimit]:
    prefix = f"test:ingestion:collect-rate:{uuid.uuid4()}:"
    limiter = RedisRateLimiter(shared_redis_url(), key_prefix=prefix, purpose="collect")
    settings = Settings(TRACKAI_ENV="test")
    yield CollectRateLimit(
        limiter,
        per_client=settings.collect_ip_rate_limit_per_minute,
        per_tenant=settings.collect_tenant_rate_limit_per_minute,
    )
    await limiter.close()
    client = aioredis.Redis.from_url(shared_redis_url())
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_the_defaults_let_a_campaign_spike_and_a_shared_address_through(
    default_limits: CollectRateLimit,
) -> None:
    assert default_limits.per_client == DEFAULT_CLIENT_LIMIT_PER_MINUTE == 300
    assert default_limits.per_tenant == DEFAULT_TENANT_LIMIT_PER_MINUTE == 6000
    hits_per_visitor = 5  # page view, lead, checkout start and a page or two more
    # A campaign spike: 1,000 visitors in the same minute, each from its own address, all at once.
    tenant = str(uuid.uuid4())
    spike = await asyncio.gather(
        *(
            default_limits.check(tenant, _visitor(n))
            for n in range(1000)
            for _ in range(hits_per_visitor)
        )
    )
    assert spike.count(None) == 5000
    # 60 visitors behind one address (an office, a mobile carrier's CGNAT) on one tenant, all at
    # once (decided in arrival order), and 60 hits more: the ceiling is real.
    shop = str(uuid.uuid4())
    shared = await asyncio.gather(
        *(default_limits.check(shop, _visitor(0)) for _ in range(60 * hits_per_visitor + 60))
    )
    assert shared[:300].count(None) == 300
    # (A slot frees every 0.2 s: unless these took 12 s, some of the 60 are refused.)
    assert {r.error for r in shared[300:] if r is not None} == {"client_rate_limited"}
    # The spiking tenant fills up soon after its 6,000 (a slot frees every 10 ms: unless these
    # took 30 s, some of the 3,000 more are refused).
    more = await asyncio.gather(*(default_limits.check(tenant, _visitor(n)) for n in range(3000)))
    refusals = {r.error for r in more if r is not None}
    assert refusals == {"rate_limited"}
