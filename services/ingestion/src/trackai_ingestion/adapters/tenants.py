"""The tenant registry as ingestion's ports: the kit's caching registry client, with its failures
translated into ``RegistryUnavailable`` and tenant views into the collect endpoint's model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import grpc

from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai_ingestion.domain.collect import CollectTenant
from trackai_ingestion.service_layer.ports import RegistryUnavailable
from trackai_kit.tenant_config import RegistryClient, TenantConfigUnavailable


class TenantViews(Protocol):
    """Where tenant views come from (no secret: the collect endpoint needs none)."""

    async def get(self, tenant_ref: str) -> prov.TenantView | None: ...


def collect_tenant(config: prov.TenantView) -> CollectTenant:
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


@dataclass(frozen=True)
class RegistryWebhookConfigs:
    """``TenantConfigs``: any registry failure, transient or not, means "retry later" to a
    gateway; a webhook is never refused for good because the registry misbehaved."""

    configs: RegistryClient[prov.WebhookConfig]

    async def get(self, tenant_ref: str) -> prov.WebhookConfig | None:
        try:
            return await self.configs.get(tenant_ref)
        except (TenantConfigUnavailable, grpc.aio.AioRpcError) as exc:
            raise RegistryUnavailable(f"{type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class WebhookConfigViews:
    """The view part of the webhook config cache, for the collect endpoint (one cache)."""

    configs: RegistryClient[prov.WebhookConfig]

    async def get(self, tenant_ref: str) -> prov.TenantView | None:
        config = await self.configs.get(tenant_ref)
        return None if config is None else config.view


@dataclass(frozen=True)
class RegistryTenantDirectory:
    """``TenantDirectory`` over a source of tenant views."""

    views: TenantViews

    async def get(self, tenant_ref: str) -> CollectTenant | None:
        try:
            view = await self.views.get(tenant_ref)
        except TenantConfigUnavailable as exc:
            raise RegistryUnavailable(str(exc)) from exc
        return collect_tenant(view) if view is not None else None
