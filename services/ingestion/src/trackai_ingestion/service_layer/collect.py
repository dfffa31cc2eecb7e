"""Record a browser hit: the ``ingestion.events`` row and its ``IngestEvent`` outbox message in one
transaction, idempotent on (tenant, kind, event_id), so a beacon sent twice is stored once.
"""

# ruff: noqa: S608 - the schema name is validated; every value is a bind parameter

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import asyncpg

from trackai.ingestion.v1 import events_pb2 as ev
from trackai.provisioner.v1 import provisioner_service_pb2 as registry_pb
from trackai_ingestion.domain.collect import BrowserHit, CollectTenant, HitKind, build_hit
from trackai_kit.outbox import enqueue
from trackai_kit.postgres import check_identifier
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
        schema: str = "ingestion",
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._pool = pool
        self._tenants = tenants
        self._schema = check_identifier(schema)
        self._clock = clock
        s = self._schema
        self._insert = f"""
            INSERT INTO {s}.events (
                tenant_id, kind, event_name, event_id, event_time, received_at,
                email_hash, phone_hash, session_id, page_url, referrer,
                fbclid, fbc, fbp, client_ip, user_agent, utm, tracking, funnel_id,
                external_id_hash
            ) VALUES (
                $1::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                $12, $13, $14, $15::inet, $16, $17::jsonb, $18::jsonb, $19::uuid, $20
            )
            ON CONFLICT (tenant_id, kind, event_id)
                WHERE kind <> 'conversion' AND event_id IS NOT NULL
            DO NOTHING
            RETURNING id
        """

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
        async with self._pool.acquire() as conn, conn.transaction():
            row_id = await conn.fetchval(
                self._insert,
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
            )
            if row_id is None:
                return Recorded(stored=False, event_row_id=None)
            message_id = str(row_id)
            await enqueue(
                conn,
                schema=self._schema,
                routing_key=INGEST_EVENTS,
                message_id=message_id,
                message_type=MESSAGE_TYPE,
                body=ingest_event(hit, message_id, received_at).SerializeToString(),
            )
        return Recorded(stored=True, event_row_id=message_id)
