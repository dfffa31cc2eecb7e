"""Record a browser hit: the ``ingestion.events`` row and its ``IngestEvent`` outbox message,
committed together (group-committed with the hits arriving meanwhile, see ``adapters/hits.py``),
idempotent on (tenant, kind, event_id), so a beacon sent twice is stored once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import asyncpg

from trackai.ingestion.v1 import events_pb2 as ev
from trackai.provisioner.v1 import provisioner_service_pb2 as registry_pb
from trackai_ingestion.adapters.hits import HitStore, new_id
from trackai_ingestion.domain.collect import BrowserHit, CollectTenant, HitKind, build_hit
from trackai_kit import outbox
from trackai_kit.tenant_config import TenantConfigUnavailable
from trackai_kit.topology import INGEST_EVENTS

_HIT_TYPES: dict[HitKind, ev.HitType.ValueType] = {
    "page_view": ev.HIT_TYPE_PAGE_VIEW,
    "lead": ev.HIT_TYPE_LEAD,
    "checkout_start": ev.HIT_TYPE_INITIATE_CHECKOUT,
}
MESSAGE_TYPE = ev.IngestEvent.DESCRIPTOR.full_name


class TenantDirectory(Protocol):
    """Where tenant views come from (no secret: the collect endpoint needs none)."""

    async def get(self, tenant_ref: str) -> registry_pb.TenantView | None: ...


class TenantUnavailable(RuntimeError):
    """The tenant registry cannot answer now and nothing is cached: ask the browser to retry."""


@dataclass(frozen=True)
class Recorded:
    """Outcome of one hit: ``stored`` is False for a duplicate (already stored and enqueued)."""

    stored: bool
    event_row_id: str | None


def collect_tenant(config: registry_pb.TenantView) -> CollectTenant:
    """The collect endpoint's view of a tenant."""
    funnels: dict[str, str] = {}
    for item in config.funnels:
        funnels[item.funnel.slug] = item.funnel.id
        funnels[item.funnel.id.lower()] = item.funnel.id
    return CollectTenant(
        tenant_id=config.tenant.id,
        allowed_domains=tuple(config.tenant.allowed_domains),
        funnels=funnels,
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


def ingest_event(hit: BrowserHit, message_id: str, received_at: datetime) -> ev.IngestEvent:
    """The ``ingest-events`` message of a stored hit."""
    tracking = ev.TrackingParameters(
        src=hit.src or "",
        sck=hit.sck or "",
        fbclid=hit.fbclid or "",
        fbc=hit.fbc or "",
        fbp=hit.fbp or "",
    )
    for key, value in hit.utm.items():  # keys are UTM_KEYS, the proto's utm_* field names
        setattr(tracking, key, value)
    message = ev.IngestEvent(
        message_id=message_id,
        tenant_id=hit.tenant_id,
        hit=ev.BrowserHit(
            hit_type=_HIT_TYPES[hit.kind],
            session_id=hit.session_id,
            event_id=hit.event_id,
            page_url=hit.page_url,
            referrer=hit.referrer or "",
            tracking=tracking,
            client_ip=hit.client_ip or "",
            user_agent=hit.user_agent or "",
            user_data=ev.HashedUserData(
                em=hit.email_hash or "", ph=hit.phone_hash or "", external_id=hit.visitor_id or ""
            ),
            funnel_id=hit.funnel_id or "",
        ),
    )
    message.received_time.FromDatetime(received_at)
    message.hit.event_time.FromDatetime(hit.event_time)
    return message


class RecordBrowserHit:
    """Use case behind ``POST /api/v1/collect/{tenant}``."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        tenants: TenantDirectory,
        *,
        clock: Callable[[], datetime] = _utcnow,
        acquire_timeout_s: float | None = None,
    ) -> None:
        self._tenants = tenants
        self._clock = clock
        self._store = HitStore(pool, acquire_timeout_s=acquire_timeout_s)

    async def tenant(self, tenant_ref: str) -> CollectTenant | None:
        """The tenant by id or slug; None when unknown; :class:`TenantUnavailable` when unsure."""
        try:
            config = await self._tenants.get(tenant_ref)
        except TenantConfigUnavailable as exc:
            raise TenantUnavailable(str(exc)) from exc
        return collect_tenant(config) if config is not None else None

    async def __call__(
        self,
        tenant: CollectTenant,
        body: object,
        *,
        client_ip: str | None,
        user_agent: str | None,
    ) -> Recorded:
        """Validate (``InvalidHit`` names the fields), hash, store and enqueue one hit."""
        received_at = self._clock()
        hit = build_hit(
            body,
            tenant=tenant,
            client_ip=client_ip,
            user_agent=user_agent,
            received_at=received_at,
        )
        tracking = {key: value for key, value in (("src", hit.src), ("sck", hit.sck)) if value}
        row_id = new_id()
        message_id = str(row_id)
        row = [
            row_id,
            hit.tenant_id,
            hit.kind,
            hit.event_name,
            hit.event_id,
            hit.event_time,
            received_at,
            hit.email_hash,
            hit.phone_hash,
            hit.session_id,
            hit.page_url,
            hit.referrer,
            hit.fbclid,
            hit.fbc,
            hit.fbp,
            hit.client_ip,
            hit.user_agent,
            dict(hit.utm),
            tracking,
            hit.funnel_id or None,
            hit.visitor_id,
            # The message, in the caller's trace context.
            *outbox.enqueue_params(
                routing_key=INGEST_EVENTS,
                message_id=message_id,
                message_type=MESSAGE_TYPE,
                body=ingest_event(hit, message_id, received_at).SerializeToString(),
            ),
        ]
        if not await self._store.record(row):
            return Recorded(stored=False, event_row_id=None)
        return Recorded(stored=True, event_row_id=message_id)
