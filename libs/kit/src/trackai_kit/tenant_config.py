"""Cached clients of the tenant registry's per-caller views: :func:`tenant_view_client` (no
secret: matcher, agent), :func:`webhook_config_client` (one tenant's webhook secrets: ingestion)
and :func:`meta_destination_client` (the token of one destination: dispatcher). Answers are kept
briefly, one call per key is in flight at a time, and a stale answer is served while the
provisioner is unreachable, so a registry outage does not stop webhooks or deliveries.

Known tenants and unknown refs are cached apart: known answers in a least-recently-used cache,
"not found" answers in a smaller one of their own, so a flood of made-up tenant ids (anyone can
put one in a webhook URL) evicts other made-up ids, never a real tenant's answer.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import grpc

from trackai.provisioner.v1 import provisioner_service_pb2 as pb
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as pb_grpc
from trackai_kit.grpc import client_channel
from trackai_kit.logging import get_logger
from trackai_kit.settings import GrpcTlsSettings

if TYPE_CHECKING:
    from trackai.provisioner.v1.provisioner_service_pb2_grpc import (
        TenantRegistryServiceAsyncStub,
    )

log = get_logger(__name__)

T = TypeVar("T")
#: A registry key: the tenant ref first (what :meth:`RegistryClient.invalidate` matches).
Key = tuple[str, ...]
Fetch = Callable[["TenantRegistryServiceAsyncStub", Key, float], Awaitable[T]]

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
class _Entry(Generic[T]):
    config: T | None  # None: the registry said NOT_FOUND
    fetched_at: float


class _Lru(Generic[T]):
    """A bounded map that forgets its least recently used entry first."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max(1, max_entries)
        self.entries: OrderedDict[Key, _Entry[T]] = OrderedDict()

    def get(self, key: Key) -> _Entry[T] | None:
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def put(self, key: Key, entry: _Entry[T]) -> None:
        self.entries[key] = entry
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    def pop(self, key: Key) -> None:
        self.entries.pop(key, None)

    def pop_tenant(self, tenant_ref: str) -> None:
        for key in [k for k in self.entries if k[0] == tenant_ref]:
            del self.entries[key]


class RegistryClient(Generic[T]):
    """``await client.get(tenant_ref, *rest)`` → the registry's answer, or None for NOT_FOUND."""

    def __init__(
        self,
        target: str,
        token: str,
        fetch: Fetch[T],
        *,
        tls: GrpcTlsSettings | None = None,
        ttl_s: float = 30.0,
        negative_ttl_s: float = 5.0,
        max_stale_s: float = 600.0,
        call_timeout_s: float = 2.0,
        max_entries: int = 10_000,
        max_negative_entries: int = 2_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._channel = client_channel(target, token, tls)
        self._fetch_one = fetch
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
        self._known: _Lru[T] = _Lru(max_entries)
        self._unknown: _Lru[T] = _Lru(max_negative_entries)
        self._inflight: dict[Key, asyncio.Future[T | None]] = {}

    def cached(self, tenant_ref: str, *rest: str) -> T | None:
        """The known answer if it is cached (fresh or stale), without asking anyone."""
        entry = self._known.get((tenant_ref, *rest))
        return entry.config if entry is not None else None

    async def get(self, tenant_ref: str, *rest: str) -> T | None:
        key = (tenant_ref, *rest)
        entry = self._known.get(key) or self._unknown.get(key)
        now = self._clock()
        if entry is not None:
            ttl = self._ttl if entry.config is not None else self._negative_ttl
            if now - entry.fetched_at < ttl:
                return entry.config
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            config = await self._fetch(key, entry)
        except BaseException as exc:
            future.set_exception(exc)
            # Mark retrieved: concurrent waiters get the exception, a lone caller re-raises it.
            future.exception()
            raise
        else:
            future.set_result(config)
            return config
        finally:
            del self._inflight[key]

    async def _fetch(self, key: Key, entry: _Entry[T] | None) -> T | None:
        tenant_ref = key[0]
        try:
            config = await self._fetch_one(self._stub, key, self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                self._store(key, None)
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
        self._store(key, config)
        return config

    def _store(self, key: Key, config: T | None) -> None:
        entry = _Entry(config, self._clock())
        if config is None:
            self._known.pop(key)
            self._unknown.put(key, entry)
        else:
            self._unknown.pop(key)
            self._known.put(key, entry)

    def invalidate(self, tenant_ref: str) -> None:
        """Forget every cached answer about ``tenant_ref``."""
        self._known.pop_tenant(tenant_ref)
        self._unknown.pop_tenant(tenant_ref)

    async def close(self) -> None:
        await self._channel.close()


async def _tenant_view(
    stub: TenantRegistryServiceAsyncStub, key: Key, deadline_s: float
) -> pb.TenantView:
    resp = await stub.GetTenantView(pb.GetTenantViewRequest(tenant_ref=key[0]), timeout=deadline_s)
    return resp.view


async def _webhook_config(
    stub: TenantRegistryServiceAsyncStub, key: Key, deadline_s: float
) -> pb.WebhookConfig:
    resp = await stub.GetWebhookConfig(
        pb.GetWebhookConfigRequest(tenant_ref=key[0]), timeout=deadline_s
    )
    return resp.config


async def _meta_destination(
    stub: TenantRegistryServiceAsyncStub, key: Key, deadline_s: float
) -> pb.MetaDestination:
    tenant_ref, funnel_id, pixel_id = key
    resp = await stub.GetMetaDestination(
        pb.GetMetaDestinationRequest(tenant_ref=tenant_ref, funnel_id=funnel_id, pixel_id=pixel_id),
        timeout=deadline_s,
    )
    return resp.destination


def tenant_view_client(target: str, token: str, **kwargs: Any) -> RegistryClient[pb.TenantView]:
    """``get(tenant_ref)`` → the tenant's view (no secret)."""
    return RegistryClient(target, token, _tenant_view, **kwargs)


def webhook_config_client(
    target: str, token: str, **kwargs: Any
) -> RegistryClient[pb.WebhookConfig]:
    """``get(tenant_ref)`` → the tenant's view and its gateway webhook secrets."""
    return RegistryClient(target, token, _webhook_config, **kwargs)


def meta_destination_client(
    target: str, token: str, **kwargs: Any
) -> RegistryClient[pb.MetaDestination]:
    """``get(tenant_ref, funnel_id, pixel_id)`` → the destination delivering that pixel."""
    return RegistryClient(target, token, _meta_destination, **kwargs)
