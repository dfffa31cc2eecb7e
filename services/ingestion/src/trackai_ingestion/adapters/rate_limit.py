"""Per-tenant webhook rate limit shared by every replica: GCRA in one atomic Redis Lua script.

Redis is an optimisation of fairness, not a dependency of acceptance: when it cannot answer, the
limiter lets the request through (fail open), counts it, logs at most once per cool-down, and does
not ask Redis again until the cool-down has passed, so an outage costs no latency per webhook.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from trackai_kit.logging import get_logger
from trackai_kit.telemetry import get_meter

log = get_logger(__name__)
_fail_open = get_meter(__name__).create_counter(
    "trackai.ingestion.rate_limit.fail_open",
    description="Webhooks let through without a rate-limit decision because Redis did not answer",
)

WINDOW_S = 60
KEY_PREFIX = "trackai:ingestion:rate:"

# GCRA (generic cell rate algorithm): one key per tenant holding the theoretical arrival time
# (TAT) in microseconds of Redis' own clock, so every replica agrees on "now". ``limit`` requests
# fit in a burst, then one per ``period / limit``. Returns {allowed, retry_after_us, remaining}.
_GCRA = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local period_us = tonumber(ARGV[2])
local emission = period_us / limit
local tolerance = period_us - emission
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', key) or '0')
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, math.ceil(allow_at - now), 0}
end
local new_tat = tat + emission
redis.call('SET', key, string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
local remaining = math.floor((tolerance - (new_tat - now)) / emission + 1)
if remaining < 0 then remaining = 0 end
return {1, 0, remaining}
"""


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    #: Seconds until a request would be allowed (whole seconds, for ``Retry-After``).
    retry_after_s: int = 0
    remaining: int = 0
    #: True when Redis did not answer and the request was let through.
    degraded: bool = False


class RedisRateLimiter:
    """``await limiter.acquire(tenant_id, limit_per_minute)`` -> :class:`RateDecision`."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 0.25,
        cooldown_s: float = 5.0,
        key_prefix: str = KEY_PREFIX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry_on_timeout=False,
        )
        self._script = self._redis.register_script(_GCRA)
        self._cooldown_s = cooldown_s
        self._prefix = key_prefix
        self._clock = clock
        self._skip_until = 0.0

    async def acquire(self, tenant_id: str, limit_per_minute: int) -> RateDecision:
        if self._clock() < self._skip_until:
            _fail_open.add(1)
            return RateDecision(True, degraded=True)
        try:
            allowed, retry_after_us, remaining = await self._script(
                keys=[self._prefix + tenant_id],
                args=[max(1, limit_per_minute), WINDOW_S * 1_000_000],
            )
        except (RedisError, OSError, TimeoutError) as exc:
            self._skip_until = self._clock() + self._cooldown_s
            _fail_open.add(1)
            log.warning(
                "rate limiter unavailable; accepting webhooks without a limit",
                error=f"{type(exc).__name__}: {exc}",
                retry_in_s=self._cooldown_s,
            )
            return RateDecision(True, degraded=True)
        return RateDecision(
            bool(allowed),
            retry_after_s=math.ceil(int(retry_after_us) / 1_000_000),
            remaining=int(remaining),
        )

    async def close(self) -> None:
        await self._redis.aclose()
