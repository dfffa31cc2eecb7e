"""Rate limits shared by every replica (per tenant for webhooks; per tenant and per client address
for browser hits): GCRA in one atomic Redis Lua script.

Redis is an optimisation of fairness, not a dependency of acceptance: when it cannot answer, the
limiter lets the request through (fail open), counts it, logs at most once per cool-down, and does
not ask Redis again until the cool-down has passed, so an outage costs no latency per webhook.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from trackai_ingestion.service_layer.ports import RateDecision
from trackai_kit.logging import get_logger
from trackai_kit.telemetry import get_meter

log = get_logger(__name__)
_fail_open = get_meter(__name__).create_counter(
    "trackai.ingestion.rate_limit.fail_open",
    description="Requests let through without a rate-limit decision because Redis did not answer",
)
#: Attribute of the counter above: what the limiter guards (``webhooks``, ``collect``).
ATTR_PURPOSE = "trackai.rate_limit.purpose"
#: What the fail-open log line says is let through, by purpose.
_LET_THROUGH = {"webhooks": "webhooks", "collect": "browser hits"}

WINDOW_S = 60
KEY_PREFIX = "trackai:ingestion:rate:"
#: Decisions taken by one script call at most, and script calls in flight at once.
MAX_BATCH = 128
MAX_IN_FLIGHT = 2

# GCRA (generic cell rate algorithm): one key per limited thing (a tenant, a client address)
# holding the theoretical arrival time (TAT) in microseconds of Redis' own clock, so every replica
# agrees on "now". ``limit`` requests fit in a burst, then one per ``period / limit``.
#
# One call decides several requests in order; a request may name several keys, and is allowed
# only when every one of them has room (then each of them counts it; refused, none does). ARGV[1]
# is the period; then, per request, its number of keys n and their n limits; KEYS are the
# requests' keys in the same order. A key repeated in the batch sees the TAT its earlier requests
# left, rounded as if it had been stored, so the answers are those of one call per request at the
# same instant. Returns {allowed, retry_after_us, remaining, refused_by} per request, flattened:
# retry_after_us is the longest wait of the keys without room, remaining the fewest requests left
# among the keys, refused_by the (1-based) position of the first key without room, 0 if none.
_GCRA = """
local period_us = tonumber(ARGV[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tats = {}
local written = {}
local out = {}
local k = 0
local a = 2
while a <= #ARGV do
  local n = tonumber(ARGV[a])
  a = a + 1
  local refused_by = 0
  local wait = 0
  local remaining = nil
  local next_tats = {}
  for j = 1, n do
    local key = KEYS[k + j]
    local emission = period_us / tonumber(ARGV[a + j - 1])
    local tolerance = period_us - emission
    local tat = tats[key]
    if tat == nil then
      tat = tonumber(redis.call('GET', key) or '0')
      if tat < now then tat = now end
      tats[key] = tat
    end
    local allow_at = tat - tolerance
    if now < allow_at then
      if refused_by == 0 then refused_by = j end
      if allow_at - now > wait then wait = allow_at - now end
    else
      local new_tat = tat + emission
      next_tats[j] = new_tat
      local left = math.floor((tolerance - (new_tat - now)) / emission + 1)
      if left < 0 then left = 0 end
      if remaining == nil or left < remaining then remaining = left end
    end
  end
  if refused_by == 0 then
    for j = 1, n do
      local stored = string.format('%.0f', next_tats[j])
      tats[KEYS[k + j]] = tonumber(stored)
      written[KEYS[k + j]] = stored
    end
    out[#out + 1] = 1
    out[#out + 1] = 0
    out[#out + 1] = remaining
    out[#out + 1] = 0
  else
    out[#out + 1] = 0
    out[#out + 1] = math.ceil(wait)
    out[#out + 1] = 0
    out[#out + 1] = refused_by
  end
  k = k + n
  a = a + n
end
for key, stored in pairs(written) do
  redis.call('SET', key, stored, 'PX', math.ceil((tonumber(stored) - now) / 1000) + 1)
end
return out
"""


_DEGRADED = RateDecision(True, degraded=True)


@dataclass(frozen=True)
class _Pending:
    """One request waiting for a script call: its keys (prefixed) and their limits."""

    keys: tuple[str, ...]
    limits: tuple[int, ...]
    done: asyncio.Future[RateDecision]


class RedisRateLimiter:
    """``await limiter.acquire(key, limit_per_minute)`` -> :class:`RateDecision`.

    ``purpose`` names what is limited (``webhooks``, ``collect``) in the fail-open log line and
    metric; keys of different purposes must not collide (the caller namespaces them).

    Decisions are batched: requests that arrive while script calls are in flight are decided
    together, in arrival order, by the next call (at most :data:`MAX_BATCH` requests,
    :data:`MAX_IN_FLIGHT` calls at once), so under load one round trip serves many webhooks;
    alone, a request is decided at once.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 0.25,
        cooldown_s: float = 5.0,
        key_prefix: str = KEY_PREFIX,
        purpose: str = "webhooks",
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
        self._let_through_what = _LET_THROUGH.get(purpose, purpose)
        self._attributes = {ATTR_PURPOSE: purpose}
        self._clock = clock
        self._skip_until = 0.0
        self._pending: deque[_Pending] = deque()
        self._deciders: set[asyncio.Task[None]] = set()

    async def acquire(self, key: str, limit_per_minute: int) -> RateDecision:
        return await self.acquire_all([(key, limit_per_minute)])

    async def acquire_all(self, limits: Sequence[tuple[str, int]]) -> RateDecision:
        """One request against several ``(key, limit per minute)`` at once: allowed only when
        every key has room, and then counted by each (refused, by none); ``refused_by`` says
        which key had no room first."""
        if self._clock() < self._skip_until:
            _fail_open.add(1, self._attributes)
            return _DEGRADED
        pending = _Pending(
            tuple(self._prefix + key for key, _ in limits),
            tuple(max(1, limit) for _, limit in limits),
            asyncio.get_running_loop().create_future(),
        )
        self._pending.append(pending)
        if len(self._deciders) < MAX_IN_FLIGHT:
            # A task of its own, so that a cancelled caller cannot cancel a call that also
            # decides for others.
            decider = asyncio.create_task(self._decide_pending())
            self._deciders.add(decider)
            decider.add_done_callback(self._deciders.discard)
        return await pending.done

    async def _decide_pending(self) -> None:
        while self._pending:
            if self._clock() < self._skip_until:
                # Another call failed meanwhile: no call until the cool-down has passed.
                self._let_through(self._drain(len(self._pending)))
                return
            if batch := self._drain(MAX_BATCH):
                await self._decide(batch)

    def _drain(self, most: int) -> list[_Pending]:
        """Up to ``most`` waiting requests, oldest first, skipping callers that went away."""
        batch: list[_Pending] = []
        while self._pending and len(batch) < most:
            pending = self._pending.popleft()
            if not pending.done.done():
                batch.append(pending)
        return batch

    async def _decide(self, batch: list[_Pending]) -> None:
        args: list[int] = [WINDOW_S * 1_000_000]
        for p in batch:
            args.append(len(p.keys))
            args.extend(p.limits)
        try:
            flat = await self._script(keys=[key for p in batch for key in p.keys], args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            if self._clock() >= self._skip_until:  # once per cool-down, not once per call
                log.warning(
                    f"rate limiter unavailable; accepting {self._let_through_what} without a limit",
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in_s=self._cooldown_s,
                )
            self._skip_until = self._clock() + self._cooldown_s
            # Whatever waits behind this call fails open too, without asking Redis again.
            self._let_through(batch + self._drain(len(self._pending)))
            return
        except Exception as exc:  # not an outage: each caller sees the error, as before
            for pending in batch:
                if not pending.done.done():
                    pending.done.set_exception(exc)
            return
        except BaseException:
            for pending in batch:
                pending.done.cancel()
            raise
        for n, pending in enumerate(batch):
            allowed, retry_after_us, remaining, refused_by = flat[4 * n : 4 * n + 4]
            if not pending.done.done():
                pending.done.set_result(
                    RateDecision(
                        bool(allowed),
                        retry_after_s=math.ceil(int(retry_after_us) / 1_000_000),
                        remaining=int(remaining),
                        refused_by=int(refused_by) - 1 if refused_by else None,
                    )
                )

    def _let_through(self, batch: list[_Pending]) -> None:
        for pending in batch:
            if not pending.done.done():
                _fail_open.add(1, self._attributes)
                pending.done.set_result(_DEGRADED)

    async def close(self) -> None:
        # Calls in flight end within the socket timeout; their callers get their answers.
        await asyncio.gather(*self._deciders, return_exceptions=True)
        await self._redis.aclose()
