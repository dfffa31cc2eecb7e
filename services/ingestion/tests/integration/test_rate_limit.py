"""The Redis rate limiter against real Redis: batched decisions give exactly the answers of one
call per request, a request against several keys is counted by all or none, under concurrency
they share script calls, and an outage fails open."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from trackai_ingestion.adapters.rate_limit import MAX_IN_FLIGHT, RedisRateLimiter
from trackai_ingestion.service_layer.ports import RateDecision
from trackai_testing.plugin import shared_redis_url

REDIS_URL = shared_redis_url()
pytestmark = pytest.mark.integration
T = TypeVar("T")


@pytest_asyncio.fixture(loop_scope="session")
async def prefix() -> AsyncIterator[str]:
    """A key prefix of this test alone (the Redis is shared); its keys are removed afterwards."""
    prefix = f"test:ingestion:rate:{uuid.uuid4()}:"
    yield prefix
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def limiter(prefix: str) -> AsyncIterator[RedisRateLimiter]:
    limiter = RedisRateLimiter(REDIS_URL, key_prefix=prefix)
    yield limiter
    await limiter.close()


def _answers(decisions: list[RateDecision]) -> list[tuple[bool, int, int]]:
    return [(d.allowed, d.remaining, d.retry_after_s) for d in decisions]


async def _script_calls(prefix: str, action: Callable[[], Awaitable[T]]) -> tuple[T, int]:
    """Run ``action`` and count the script calls Redis received for keys under ``prefix``."""
    monitor_client = aioredis.Redis.from_url(REDIS_URL)
    end = f"{prefix}end-of-count"
    async with monitor_client.monitor() as monitor:
        result = await action()
        await monitor_client.echo(end)
        calls = 0
        async for command in monitor.listen():
            text = command["command"]
            if text == f"ECHO {end}":
                break
            if text.upper().startswith(("EVALSHA ", "EVAL ")) and prefix in text:
                calls += 1
    await monitor_client.aclose()
    return result, calls


async def test_concurrent_acquires_allow_exactly_the_limit(limiter: RedisRateLimiter) -> None:
    decisions = await asyncio.gather(*(limiter.acquire("tenant", 20) for _ in range(50)))
    # Arrival order: the first 20 use up the burst, counting down, the 30 others are refused
    # until the next slot, one emission interval (60 s / 20 = 3 s) away.
    assert _answers(decisions[:20]) == [(True, 19 - n, 0) for n in range(20)]
    assert _answers(decisions[20:]) == [(False, 0, 3)] * 30
    assert not any(d.degraded for d in decisions)


async def test_a_burst_larger_than_a_batch_and_the_connection_pool_is_still_limited(
    limiter: RedisRateLimiter,
) -> None:
    # 500 requests at once: more than one script call holds, and more than the client's pool of
    # 100 connections (one call per request used to run out of it and fail open).
    decisions = await asyncio.gather(*(limiter.acquire("tenant", 20) for _ in range(500)))
    assert not any(d.degraded for d in decisions)
    assert sum(d.allowed for d in decisions) == 20
    assert {d.retry_after_s for d in decisions if not d.allowed} == {3}


async def test_interleaved_tenants_in_one_batch_each_get_their_own_budget(
    limiter: RedisRateLimiter,
) -> None:
    limits = {"a": 3, "b": 5, "c": 1}
    order = [name for _ in range(8) for name in limits]  # a b c a b c ...
    decisions = await asyncio.gather(*(limiter.acquire(name, limits[name]) for name in order))
    by_tenant = {
        name: [d for n, d in zip(order, decisions, strict=True) if n == name] for name in limits
    }
    assert (
        _answers(by_tenant["a"])
        == [(True, 2, 0), (True, 1, 0), (True, 0, 0)] + [(False, 0, 20)] * 5
    )
    assert _answers(by_tenant["b"]) == [(True, 4 - n, 0) for n in range(5)] + [(False, 0, 12)] * 3
    assert _answers(by_tenant["c"]) == [(True, 0, 0)] + [(False, 0, 60)] * 7
    # The same requests one at a time, on fresh tenants, get the same answers.
    one_by_one = [await limiter.acquire(f"{name}-alone", limits[name]) for name in order]
    assert _answers(one_by_one) == _answers(list(decisions))


async def test_a_request_on_several_keys_is_counted_by_all_of_them_or_by_none(
    limiter: RedisRateLimiter,
) -> None:
    # A client key with room for 2 and a tenant key with room for 10: the client runs out first,
    # and its refused requests do not use up the tenant's room.
    both = [await limiter.acquire_all([("client", 2), ("tenant", 10)]) for _ in range(4)]
    assert [(d.allowed, d.refused_by, d.remaining) for d in both] == [
        (True, None, 1),  # the fewest left among the keys: the client's
        (True, None, 0),
        (False, 0, 0),
        (False, 0, 0),
    ]
    assert both[2].retry_after_s == 30  # the client's next slot: 60 s / 2
    assert (await limiter.acquire("tenant", 10)).remaining == 7  # only the 2 allowed counted
    # The second key without room: named by its position, and no key counts the request.
    await limiter.acquire("full", 1)
    refused = await limiter.acquire_all([("fresh", 5), ("full", 1)])
    assert (refused.allowed, refused.refused_by, refused.retry_after_s) == (False, 1, 60)
    assert (await limiter.acquire("fresh", 5)).remaining == 4  # "fresh" was not counted
    # Both without room: the longest wait, so that Retry-After is honest.
    refused = await limiter.acquire_all([("client", 2), ("full", 1)])
    assert (refused.refused_by, refused.retry_after_s) == (0, 60)


async def test_grouped_requests_in_one_batch_get_the_answers_of_one_call_each(
    limiter: RedisRateLimiter,
) -> None:
    groups = [[("c1", 2), ("t", 5)], [("c2", 3), ("t", 5)], [("t", 5)]] * 3
    together = await asyncio.gather(*(limiter.acquire_all(g) for g in groups))
    alone = [
        await limiter.acquire_all([(f"{key}-alone", limit) for key, limit in g]) for g in groups
    ]
    assert [(d.allowed, d.refused_by, d.remaining, d.retry_after_s) for d in together] == [
        (d.allowed, d.refused_by, d.remaining, d.retry_after_s) for d in alone
    ]
    assert sum(d.allowed for d in together) == 5  # the tenant's room, shared by all


async def test_concurrent_acquires_share_script_calls(
    limiter: RedisRateLimiter, prefix: str
) -> None:
    await limiter.acquire("warm-up", 10)  # the script is loaded into Redis' cache

    async def concurrently() -> list[RateDecision]:
        return await asyncio.gather(*(limiter.acquire(f"t{n % 5}", 100) for n in range(50)))

    decisions, calls = await _script_calls(prefix, concurrently)
    assert len(decisions) == 50 and all(d.allowed for d in decisions)
    assert 1 <= calls <= MAX_IN_FLIGHT

    # The count is real: alone, every request is one call of its own, decided at once.
    async def one_by_one() -> list[RateDecision]:
        return [await limiter.acquire("alone", 100) for _ in range(3)]

    decisions, calls = await _script_calls(prefix, one_by_one)
    assert [d.remaining for d in decisions] == [99, 98, 97]
    assert calls == 3


async def test_a_cancelled_caller_does_not_break_the_batch(limiter: RedisRateLimiter) -> None:
    callers = [asyncio.create_task(limiter.acquire("tenant", 5)) for _ in range(6)]
    await asyncio.sleep(0)  # every caller is queued; none has been sent to Redis yet
    callers[2].cancel()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert isinstance(results[2], asyncio.CancelledError)
    decided = [r for n, r in enumerate(results) if n != 2]
    assert all(isinstance(d, RateDecision) and d.allowed for d in decided)
    # The cancelled request was never decided, so it used none of the budget... of which the
    # five others used all.
    assert [d.remaining for d in decided if isinstance(d, RateDecision)] == [4, 3, 2, 1, 0]
    assert not (await limiter.acquire("tenant", 5)).allowed


async def test_redis_down_fails_every_decision_open_and_rests_for_the_cool_down() -> None:
    # A "Redis" that accepts connections and drops them at once, counting them.
    connections = 0

    async def drop(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    now = 1000.0
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{port}/0", cooldown_s=5.0, clock=lambda: now)
    try:
        with capture_logs() as logs:
            first = [asyncio.create_task(limiter.acquire("tenant", 1)) for _ in range(20)]
            await asyncio.sleep(0)
            second = [asyncio.create_task(limiter.acquire("tenant", 1)) for _ in range(20)]
            decisions = await asyncio.gather(*first, *second)
            assert all(d.allowed and d.degraded for d in decisions)
            # One call per batch at most: the waiting requests did not ask Redis one by one.
            assert 1 <= connections <= MAX_IN_FLIGHT
            tried = connections
            # During the cool-down nothing is sent, and nothing more is logged.
            now += 4.9
            during = await asyncio.gather(*(limiter.acquire("tenant", 1) for _ in range(10)))
            assert all(d.allowed and d.degraded for d in during)
            assert connections == tried
            # After it, Redis is asked again.
            now += 0.2
            after = await limiter.acquire("tenant", 1)
            assert after.allowed and after.degraded
            assert connections > tried
        warnings = [
            entry
            for entry in logs
            if entry["event"] == "rate limiter unavailable; accepting webhooks without a limit"
        ]
        assert len(warnings) == 2  # one per cool-down
    finally:
        await limiter.close()
        server.close()
        await server.wait_closed()
