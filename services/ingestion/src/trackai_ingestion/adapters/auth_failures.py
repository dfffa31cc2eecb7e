"""Webhooks refused for a wrong credential, per tenant, in Redis: which gateway, which credential,
when. Operational evidence for the setup agent ("your Kiwify token does not match"), not business
data: a sorted set per tenant, trimmed to the last 30 days and 500 entries, so a flood of forged
requests costs one bounded write each and nothing in PostgreSQL. Redis errors are swallowed (the
401 is answered either way)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from trackai_ingestion.service_layer.ports import CredentialMismatch
from trackai_kit.logging import get_logger

log = get_logger(__name__)
KEY_PREFIX = "trackai:ingestion:auth-failures:"
WINDOW_S = 30 * 86400
MAX_ENTRIES = 500


class RedisAuthFailures:
    def __init__(self, url: str, *, timeout_s: float = 0.25, key_prefix: str = KEY_PREFIX) -> None:
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._prefix = key_prefix

    async def close(self) -> None:
        await self._redis.aclose()

    async def record(self, tenant_id: uuid.UUID, gateway: str, credential: str) -> None:
        now = time.time()
        key = f"{self._prefix}{tenant_id}"
        member = f"{gateway}|{credential}|{uuid.uuid4().hex}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zadd(key, {member: now})
                pipe.zremrangebyscore(key, "-inf", now - WINDOW_S)
                pipe.zremrangebyrank(key, 0, -MAX_ENTRIES - 1)
                pipe.expire(key, WINDOW_S)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("auth failure not recorded", error=type(exc).__name__)

    async def since(self, tenant_id: uuid.UUID, since: datetime) -> list[CredentialMismatch]:
        """Refusals since ``since`` per (gateway, credential); empty when Redis is down."""
        try:
            entries = await self._redis.zrangebyscore(
                f"{self._prefix}{tenant_id}", since.timestamp(), "+inf", withscores=True
            )
        except (RedisError, OSError) as exc:
            log.warning("auth failures unreadable", error=type(exc).__name__)
            return []
        found: dict[tuple[str, str], tuple[int, float]] = {}
        pairs = cast("list[tuple[bytes, float]]", entries)  # withscores=True: (member, score)
        for member, score in pairs:
            text = member.decode() if isinstance(member, bytes) else str(member)
            gateway, credential, _ = text.split("|", 2)
            count, last = found.get((gateway, credential), (0, 0.0))
            found[(gateway, credential)] = (count + 1, max(last, float(score)))
        return [
            CredentialMismatch(gateway, credential, count, datetime.fromtimestamp(last, UTC))
            for (gateway, credential), (count, last) in sorted(found.items())
        ]
