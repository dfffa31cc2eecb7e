"""Cached client of the provisioner's ``GetTenantConfig`` for internal callers (ingestion,
dispatcher): answers are kept briefly, one call per tenant is in flight at a time, and a stale
answer is served while the provisioner is unreachable, so a registry outage does not stop
webhooks or deliveries.

Known tenants and unknown refs are cached apart: known tenants in a least-recently-used cache,
"not found" answers in a smaller one of their own, so a flood of made-up tenant ids (anyone can
put one in a webhook URL) evicts other made-up ids, never a real tenant's config.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from trackai.provisioner.v1 import provisioner_service_pb2 as pb
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as pb_grpc
from trackai_kit.grpc import client_channel
from trackai_kit.logging import get_logger

if TYPE_CHECKING:
    from trackai.provisioner.v1.provisioner_service_pb2_grpc import (
        TenantRegistryServiceAsyncStub,
    )

log = get_logger(__name__)

#: Codes that mean "the registry could not answer now", as opposed to a definitive answer.
_TRANSIENT = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
}


class TenantConfigUnavailable(RuntimeError):
    """The registry cannot be reached and no recent enough answer is cached."""


@dataclass
class _Entry:
    config: pb.TenantConfig | None  # None: the registry said NOT_FOUND
    fetched_at: float


class _Lru:
    """A bounded map that forgets its least recently used entry first."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max(1, max_entries)
        self.entries: OrderedDict[str, _Entry] = OrderedDict()

    def get(self, key: str) -> _Entry | None:
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: _Entry) -> None:
        self.entries[key] = entry
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    def pop(self, key: str) -> None:
        self.entries.pop(key, None)


class TenantConfigClient:
    """``await client.get(tenant_ref)`` → the tenant's config, or None for an unknown tenant."""

    def __init__(
        self,
        target: str,
        token: str,
        *,
        ttl_s: float = 30.0,
        negative_ttl_s: float = 5.0,
        max_stale_s: float = 600.0,
        call_timeout_s: float = 2.0,
        max_entries: int = 10_000,
        max_negative_entries: int = 2_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._channel = client_channel(target, token)
        self._stub: TenantRegistryServiceAsyncStub = pb_grpc.TenantRegistryServiceStub(
            self._channel
        )
        self._ttl = ttl_s
        self._negative_ttl = negative_ttl_s
        self._max_stale = max_stale_s
        self._timeout = call_timeout_s
        self._clock = clock
        # Both bounded; the least recently used entry goes first. Unknown refs have their own
        # cache so that they cannot push a real tenant out.
        self._known = _Lru(max_entries)
        self._unknown = _Lru(max_negative_entries)
        self._inflight: dict[str, asyncio.Future[pb.TenantConfig | None]] = {}

    def cached(self, tenant_ref: str) -> pb.TenantConfig | None:
        """The known tenant's config if it is cached (fresh or stale), without asking anyone."""
        entry = self._known.get(tenant_ref)
        return entry.config if entry is not None else None

    async def get(self, tenant_ref: str) -> pb.TenantConfig | None:
        entry = self._known.get(tenant_ref) or self._unknown.get(tenant_ref)
        now = self._clock()
        if entry is not None:
            ttl = self._ttl if entry.config is not None else self._negative_ttl
            if now - entry.fetched_at < ttl:
                return entry.config
        pending = self._inflight.get(tenant_ref)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[pb.TenantConfig | None] = asyncio.get_running_loop().create_future()
        self._inflight[tenant_ref] = future
        try:
            config = await self._fetch(tenant_ref, entry)
        except BaseException as exc:
            future.set_exception(exc)
            # Mark retrieved: concurrent waiters get the exception, a lone caller re-raises it.
            future.exception()
            raise
        else:
            future.set_result(config)
            return config
        finally:
            del self._inflight[tenant_ref]

    async def _fetch(self, tenant_ref: str, entry: _Entry | None) -> pb.TenantConfig | None:
        try:
            resp = await self._stub.GetTenantConfig(
                pb.GetTenantConfigRequest(tenant_ref=tenant_ref), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                self._store(tenant_ref, None)
                return None
            if exc.code() in _TRANSIENT and entry is not None:
                age = self._clock() - entry.fetched_at
                if age < self._max_stale:
                    log.warning(
                        "tenant registry unreachable; serving cached config",
                        tenant_ref=tenant_ref,
                        age_s=round(age, 1),
                        code=exc.code().name,
                    )
                    return entry.config
            if exc.code() in _TRANSIENT:
                raise TenantConfigUnavailable(
                    f"tenant registry unreachable ({exc.code().name}) and nothing cached for "
                    f"{tenant_ref!r}"
                ) from exc
            raise
        self._store(tenant_ref, resp.config)
        return resp.config

    def _store(self, tenant_ref: str, config: pb.TenantConfig | None) -> None:
        entry = _Entry(config, self._clock())
        if config is None:
            self._known.pop(tenant_ref)
            self._unknown.put(tenant_ref, entry)
        else:
            self._unknown.pop(tenant_ref)
            self._known.put(tenant_ref, entry)

    def invalidate(self, tenant_ref: str) -> None:
        self._known.pop(tenant_ref)
        self._unknown.pop(tenant_ref)

    async def close(self) -> None:
        await self._channel.close()
