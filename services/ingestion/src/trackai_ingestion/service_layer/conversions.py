"""Read use cases of the conversions a tenant received: one by id, or a page of a filtered list."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from trackai_ingestion.domain.model import CanonicalStatus
from trackai_ingestion.service_layer.ports import (
    AuthFailureLog,
    ConversionReader,
    CredentialMismatch,
    GatewayActivity,
    ReceiptCounts,
    StoredConversion,
)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class InvalidQuery(ValueError):
    """A request argument is unusable; the message names it."""


@dataclass(frozen=True)
class Page:
    conversions: list[StoredConversion]
    next_page_token: str


def parse_tenant(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise InvalidQuery(f"tenant_id must be a UUID, got {value[:64]!r}") from exc


class ConversionQueries:
    def __init__(self, store: ConversionReader) -> None:
        self._store = store

    async def get(self, tenant_id: str, conversion_id: str) -> StoredConversion | None:
        tenant = parse_tenant(tenant_id)
        try:
            key = uuid.UUID(conversion_id)
        except ValueError as exc:
            raise InvalidQuery(f"conversion_id must be a UUID, got {conversion_id[:64]!r}") from exc
        return await self._store.get(tenant, key)

    async def get_many(
        self, tenant_id: str, conversion_ids: Sequence[str]
    ) -> list[StoredConversion]:
        """The tenant's conversions among ``conversion_ids`` (malformed ids have none)."""
        tenant = parse_tenant(tenant_id)
        if len(conversion_ids) > MAX_PAGE_SIZE:
            raise InvalidQuery(f"conversion_ids: at most {MAX_PAGE_SIZE}")
        keys = []
        for value in dict.fromkeys(conversion_ids):
            try:
                keys.append(uuid.UUID(value))
            except ValueError:
                continue
        return await self._store.get_many(tenant, keys) if keys else []

    async def list(
        self,
        tenant_id: str,
        *,
        statuses: Sequence[CanonicalStatus] = (),
        start: datetime | None = None,
        end: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
        gateway: str = "",
        order_id: str = "",
        funnel_id: str = "",
    ) -> Page:
        tenant = parse_tenant(tenant_id)
        try:
            funnel = uuid.UUID(funnel_id) if funnel_id else None
        except ValueError as exc:
            raise InvalidQuery(f"funnel_id must be a UUID, got {funnel_id[:64]!r}") from exc
        if page_size < 0:
            raise InvalidQuery("page_size must not be negative")
        if start is not None and end is not None and start >= end:
            raise InvalidQuery("start_time must be before end_time")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = _decode_token(page_token, tenant) if page_token else None
        rows = await self._store.list(
            tenant,
            statuses=statuses,
            start=start,
            end=end,
            limit=size + 1,
            after=after,
            gateway=gateway or None,
            order_id=order_id or None,
            funnel_id=funnel,
        )
        more = len(rows) > size
        rows = rows[:size]
        token = _encode_token(rows[-1], tenant) if more and rows else ""
        return Page(rows, token)


def _encode_token(last: StoredConversion, tenant: uuid.UUID) -> str:
    # The tenant is part of the token so a token cannot be replayed against another tenant.
    raw = json.dumps([last.conversion.event_time.isoformat(), str(last.id), str(tenant)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_token(token: str, tenant: uuid.UUID) -> tuple[datetime, uuid.UUID]:
    try:
        padded = token + "=" * (-len(token) % 4)
        when, key, owner = json.loads(base64.urlsafe_b64decode(padded))
        parsed = (datetime.fromisoformat(when), uuid.UUID(key))
        same_tenant = uuid.UUID(owner) == tenant
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidQuery("page_token is not a token returned by ListConversions") from exc
    if not same_tenant:
        raise InvalidQuery("page_token belongs to another tenant")
    return parsed


class WebhookActivityQueries:
    """What each of a tenant's gateways delivered since a moment (the setup agent's check)."""

    def __init__(self, receipts: ReceiptCounts, auth_failures: AuthFailureLog) -> None:
        self._receipts = receipts
        self._auth_failures = auth_failures

    async def since(
        self, tenant_id: str, since: datetime | None
    ) -> tuple[list[GatewayActivity], list[CredentialMismatch]]:
        """Authenticated webhooks per gateway, and the refusals for a wrong credential."""
        tenant = parse_tenant(tenant_id)
        if since is None:
            raise InvalidQuery("since_time is required")
        return (
            await self._receipts.since(tenant, since),
            await self._auth_failures.since(tenant, since),
        )
