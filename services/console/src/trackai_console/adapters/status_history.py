"""The live history shared by console replicas: one Redis stream per tenant
(``<namespace>{<tenant>}``), capped at ``size`` entries and expiring ``ttl_s`` after its last
update, whose entry ids ("<ms>-<seq>") are the SSE ids browsers send back as ``Last-Event-ID``.

Every replica consumes every status update; a short-lived marker per update (its message id)
makes the first replica add it and the others read back the id it got, in one script, so each
replica sends the same update under the same id. Fields are ids and states only (no personal
data), exactly what browsers receive."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from trackai_console.service_layer.ports import HistoryUnavailable

#: KEYS: the tenant's stream, the update's marker. ARGV: size, stream ttl ms, marker ttl ms,
#: then field, value, field, value...
_APPEND = """
local kept = redis.call('GET', KEYS[2])
if kept then return kept end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], '*', unpack(fields))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], id, 'PX', ARGV[3])
return id
"""
_STREAM_ID = re.compile(r"^\d{10,20}-\d{1,20}$")
#: How long a replica may lag behind the first to keep an update and still find its id.
MARKER_TTL_MS = 10 * 60 * 1000


class RedisStatusHistory:
    def __init__(
        self,
        url: str,
        *,
        namespace: str,
        size: int,
        ttl_s: float,
        timeout_s: float = 1.0,
    ) -> None:
        self._redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        self._append = self._redis.register_script(_APPEND)
        self._namespace = namespace
        self._size = size
        self._ttl_ms = int(ttl_s * 1000)
        self._timeout_s = timeout_s

    def _stream(self, tenant_id: str) -> str:
        # The hash tag keeps a tenant's stream and markers in one cluster slot.
        return f"{self._namespace}{{{tenant_id}}}"

    def is_id(self, value: str) -> bool:
        return bool(_STREAM_ID.match(value))

    async def append(self, tenant_id: str, key: str, fields: Mapping[str, str]) -> str:
        stream = self._stream(tenant_id)
        flat = [item for pair in fields.items() for item in pair]
        try:
            async with asyncio.timeout(self._timeout_s):
                kept = await self._append(
                    keys=[stream, f"{stream}:seen:{key}"],
                    args=[self._size, self._ttl_ms, MARKER_TTL_MS, *flat],
                )
        except (RedisError, OSError, TimeoutError) as exc:
            raise HistoryUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return str(kept)

    async def after(self, tenant_id: str, last_id: str) -> list[tuple[str, dict[str, str]]]:
        try:
            async with asyncio.timeout(self._timeout_s):
                entries = await self._redis.xrange(
                    self._stream(tenant_id), min=f"({last_id}", max="+", count=self._size
                )
        except (RedisError, OSError, TimeoutError) as exc:
            raise HistoryUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return [
            (str(entry_id), {str(k): str(v) for k, v in (values or {}).items()})
            for entry_id, values in entries or []
        ]

    async def close(self) -> None:
        await self._redis.aclose()
