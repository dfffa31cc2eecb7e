"""The live history shared by console replicas, on the real Redis: two hubs (two replicas) that
each receive every update keep it once under one id, a browser resumes on the other replica
with exactly what it missed and never another tenant's, the history stays bounded, and with
Redis away the hubs go on live-only."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from trackai_console.adapters.status_history import RedisStatusHistory
from trackai_console.service_layer.live import LiveUpdate, StatusHub
from trackai_testing.ports import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
async def namespace(redis_url: str) -> AsyncIterator[str]:
    name = f"test.{secrets.token_hex(4)}.console:live:"
    yield name
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{name}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def history(url: str, namespace: str, size: int = 50) -> RedisStatusHistory:
    return RedisStatusHistory(url, namespace=namespace, size=size, ttl_s=60, timeout_s=0.5)


async def both(hubs: tuple[StatusHub, ...], tenant: str, entity_id: str, key: str = "") -> None:
    """What the AMQP feed does: every replica receives every update, with its message id."""
    key = key or secrets.token_hex(8)
    for hub in hubs:
        await hub.publish(
            tenant, entity="conversion", entity_id=entity_id, status="matched", detail="",
            stage="probabilistic", score=0.81, key=key,
        )  # fmt: skip


async def take(stream: AsyncIterator[LiveUpdate | None], n: int) -> list[LiveUpdate]:
    taken: list[LiveUpdate] = []
    async for item in stream:
        if item is not None:
            taken.append(item)
        if len(taken) == n:
            break
    return taken


async def test_a_browser_resumes_on_another_replica_with_exactly_what_it_missed(
    redis_url: str, namespace: str
) -> None:
    a_history, b_history = history(redis_url, namespace), history(redis_url, namespace)
    a, b = StatusHub(shared=a_history), StatusHub(shared=b_history)
    try:
        on_a = a.subscribe("t1", heartbeat_s=0.05)
        first = asyncio.ensure_future(take(on_a, 2))
        while a.subscriber_count("t1") < 1:
            await asyncio.sleep(0.01)
        await both((a, b), "t1", "c1")
        await both((a, b), "t2", "x1")
        await both((a, b), "t1", "c2")
        seen = await asyncio.wait_for(first, 2)
        assert [u.entity_id for u in seen] == ["c1", "c2"]
        assert (seen[0].stage, seen[0].score) == ("probabilistic", 0.81)
        await on_a.aclose()  # the browser's connection drops
        await both((a, b), "t1", "c3")
        await both((a, b), "t2", "x2")
        await both((a, b), "t1", "c4")
        # It reconnects to B with the last id A sent it.
        on_b = b.subscribe("t1", seen[-1].id, heartbeat_s=0.05)
        resumed = asyncio.ensure_future(take(on_b, 3))
        while b.subscriber_count("t1") < 1:
            await asyncio.sleep(0.01)
        await both((b, a), "t1", "c5")
        got = await asyncio.wait_for(resumed, 2)
        assert [u.entity_id for u in got] == ["c3", "c4", "c5"]
        assert all(u.tenant_id == "t1" for u in got)
        ids = [u.id for u in [*seen, *got]]
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
        # Kept once although both replicas received every update.
        client = aioredis.Redis.from_url(redis_url)
        try:
            assert await client.xlen(f"{namespace}{{t1}}") == 5
            assert await client.xlen(f"{namespace}{{t2}}") == 2
        finally:
            await client.aclose()
    finally:
        await a_history.close()
        await b_history.close()


async def test_the_history_is_bounded_per_tenant(redis_url: str, namespace: str) -> None:
    shared = history(redis_url, namespace, size=5)
    hub = StatusHub(shared=shared)
    try:
        for n in range(12):
            await both((hub,), "t", f"c{n}")
        client = aioredis.Redis.from_url(redis_url)
        try:
            stream = f"{namespace}{{t}}"
            assert await client.xlen(stream) == 5
            assert 0 < await client.pttl(stream) <= 60_000
            oldest = (await client.xrange(stream, count=1))[0][0].decode()
        finally:
            await client.aclose()
        # Resuming from before the kept window gives what is kept (the page re-reads on "ready").
        stream_after = hub.subscribe("t", "1000000000000-0", heartbeat_s=0.05)
        got = await asyncio.wait_for(take(stream_after, 5), 2)
        assert [u.entity_id for u in got] == [f"c{n}" for n in range(7, 12)]
        assert got[0].id == oldest
    finally:
        await shared.close()


async def test_without_redis_pages_stay_live_and_resume_in_process() -> None:
    # A port nothing listens on, and that no other test (or worker) is handed meanwhile.
    shared = history(f"redis://127.0.0.1:{free_port()}/0", "unused:")
    hub = StatusHub(shared=shared)
    try:
        stream = hub.subscribe("t", heartbeat_s=0.05)
        first = asyncio.ensure_future(take(stream, 2))
        while hub.subscriber_count("t") < 1:
            await asyncio.sleep(0.01)
        with capture_logs() as logs:
            await both((hub,), "t", "c1")
            await both((hub,), "t", "c2")
            await both((hub,), "t", "c3")
        got = await asyncio.wait_for(first, 5)
        assert [u.entity_id for u in got] == ["c1", "c2"]
        warnings = [e for e in logs if e["log_level"] == "warning"]
        assert len(warnings) == 1 and "live-only" in warnings[0]["event"]
        # A reconnect to this same process still resumes from its own history.
        again = await asyncio.wait_for(take(hub.subscribe("t", got[0].id, 0.05), 2), 5)
        assert [u.entity_id for u in again] == ["c2", "c3"]
    finally:
        await shared.close()
