"""Tenant set-up from the registry's ``GetTenantView`` (no secret; through the kit's cached
client)."""

from __future__ import annotations

from typing import Protocol

from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai_matcher.domain.tenants import Destination, FunnelSetup, TenantSetup, unknown_tenant


class TenantConfigSource(Protocol):
    """What :func:`trackai_kit.tenant_config.tenant_view_client` offers."""

    async def get(self, tenant_ref: str) -> prov.TenantView | None: ...


def _destination(meta: prov.MetaPixel) -> Destination | None:
    return Destination(meta.pixel_id, meta.test_event_code) if meta.pixel_id else None


def setup_from_config(tenant_id: str, config: prov.TenantView | None) -> TenantSetup:
    if config is None:
        return unknown_tenant(tenant_id)
    funnels = {
        fc.funnel.id: FunnelSetup(
            id=fc.funnel.id,
            lookback_days=fc.funnel.lookback_days,
            destination=_destination(fc.meta) if fc.HasField("meta") else None,
            test_event_code=fc.funnel.test_event_code,
            pending_event=fc.funnel.pending_payment_event or None,
            landing_url=fc.funnel.landing_url,
        )
        for fc in config.funnels
    }
    default = _destination(config.meta) if config.HasField("meta") else None
    return TenantSetup(tenant_id, default, funnels)


class RegistryTenantDirectory:
    """``TenantDirectory`` on the kit's cached view client; raises the client's
    ``TenantConfigUnavailable``."""

    def __init__(self, source: TenantConfigSource) -> None:
        self._source = source

    async def setup(self, tenant_id: str) -> TenantSetup:
        return setup_from_config(tenant_id, await self._source.get(tenant_id))
