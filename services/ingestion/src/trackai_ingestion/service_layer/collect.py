"""Record a browser hit: validate and hash it, then store it with its ``IngestEvent`` message in
one commit (``HitWriter``), idempotent on (tenant, kind, event_id), so a beacon sent twice is
stored once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from trackai_ingestion.domain.collect import CollectTenant, build_hit
from trackai_ingestion.service_layer.ports import HitWriter, TenantDirectory


@dataclass(frozen=True)
class Recorded:
    """Outcome of one hit: ``stored`` is False for a duplicate (already stored and enqueued)."""

    stored: bool
    event_row_id: str | None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RecordBrowserHit:
    """Use case behind ``POST /api/v1/collect/{tenant}``."""

    def __init__(
        self,
        hits: HitWriter,
        tenants: TenantDirectory,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._hits = hits
        self._tenants = tenants
        self._clock = clock

    async def tenant(self, tenant_ref: str) -> CollectTenant | None:
        """The tenant by id or slug; None when unknown; RegistryUnavailable when unsure."""
        return await self._tenants.get(tenant_ref)

    async def __call__(
        self,
        tenant: CollectTenant,
        body: object,
        *,
        client_ip: str | None,
        user_agent: str | None,
    ) -> Recorded:
        """Validate (``InvalidHit`` names the fields), hash, store and enqueue one hit;
        StorageUnavailable when the database cannot take it now."""
        received_at = self._clock()
        hit = build_hit(
            body,
            tenant=tenant,
            client_ip=client_ip,
            user_agent=user_agent,
            received_at=received_at,
        )
        row_id = await self._hits.record(hit, received_at)
        return Recorded(stored=row_id is not None, event_row_id=row_id)
