"""Cached client of the provisioner's ``GetTenantConfig`` for internal callers (ingestion,
dispatcher): answers are kept briefly, one call per tenant is in flight at a time, and a stale
answer is served while the provisioner is unreachable, so a registry outage does not stop
webhooks or deliveries.

The answers hold decrypted secrets (gateway tokens, Meta access tokens) for as long as they are
cached. Importing this module makes the registry's messages print without them: ``str``/``repr``
of any of them (an f-string, a ``%s`` log argument, an exception message, a debugger) shows
``[REDACTED]`` in place of every secret field; the fields themselves read as usual.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from trackai.provisioner.v1 import provisioner_service_pb2 as pb
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as pb_grpc
from trackai_kit.grpc import client_channel
from trackai_kit.logging import get_logger
from trackai_kit.redaction import REDACTED

if TYPE_CHECKING:
    from trackai.provisioner.v1.provisioner_service_pb2_grpc import (
        TenantRegistryServiceAsyncStub,
    )

log = get_logger(__name__)

#: Fields of the registry's messages that hold a decrypted secret.
SECRET_FIELDS = frozenset({"secret", "signing_secret", "access_token"})


def _blank_secrets(message: Message) -> None:
    for field, value in message.ListFields():
        if field.name in SECRET_FIELDS and field.type == FieldDescriptor.TYPE_STRING:
            setattr(message, field.name, REDACTED)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value if field.is_repeated else (value,):
                if isinstance(item, Message):  # map entries of scalars are not messages
                    _blank_secrets(item)


def text_without_secrets(message: Message) -> str:
    """The message's one-line text form with every secret field's value ``[REDACTED]``."""
    copy = type(message)()
    copy.CopyFrom(message)
    _blank_secrets(copy)
    return f"{type(message).__name__}({text_format.MessageToString(copy, as_one_line=True)})"


def _hide_secrets_when_printed() -> None:
    # The generated classes print every field, secrets included; the registry's messages are the
    # only ones that carry decrypted secrets, so they (all of them: views added later too) print
    # through text_without_secrets instead.
    for descriptor in pb.DESCRIPTOR.message_types_by_name.values():
        cls = getattr(pb, descriptor.name)
        cls.__repr__ = cls.__str__ = text_without_secrets


_hide_secrets_when_printed()

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
        self._max_entries = max_entries
        # Insertion-ordered: the oldest entries are evicted first once the bound is reached, so
        # requests for made-up tenant refs cannot grow the cache without limit.
        self._cache: dict[str, _Entry] = {}
        self._inflight: dict[str, asyncio.Future[pb.TenantConfig | None]] = {}

    async def get(self, tenant_ref: str) -> pb.TenantConfig | None:
        entry = self._cache.get(tenant_ref)
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
        self._cache.pop(tenant_ref, None)
        while len(self._cache) >= self._max_entries:
            del self._cache[next(iter(self._cache))]
        self._cache[tenant_ref] = _Entry(config, self._clock())

    def invalidate(self, tenant_ref: str) -> None:
        self._cache.pop(tenant_ref, None)

    async def close(self) -> None:
        await self._channel.close()
