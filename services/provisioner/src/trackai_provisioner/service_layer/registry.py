"""Use cases of the tenant registry: create and read tenants/funnels, seal and open credentials.

Secrets are validated, sealed with the key ring and stored; only ``tenant_config`` (behind the
webhook and Meta destination views of internal callers) ever opens them again; ``tenant_view``
never does.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trackai_kit.logging import get_logger
from trackai_provisioner.domain.tenants import (
    FUNNEL_UPDATABLE,
    TENANT_UPDATABLE,
    BrokenCredential,
    Funnel,
    GatewayCredential,
    MetaDestination,
    MetaPixel,
    Tenant,
    TenantConfig,
    TenantView,
    ValidationError,
    credential_associated_data,
    validate_domains,
    validate_gateway,
    validate_landing_url,
    validate_lookback_days,
    validate_name,
    validate_pending_payment_event,
    validate_pixel_id,
    validate_rate_limit,
    validate_secret,
    validate_slug,
    validate_test_event_code,
    validated_changes,
)
from trackai_provisioner.service_layer.ports import (
    Cipher,
    Database,
    KeyRingError,
    Sealed,
    TenantRepository,
)

log = get_logger(__name__)

MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class Page:
    tenants: list[Tenant]
    next_page_token: str


def _decode_page_token(token: str) -> tuple[datetime, uuid.UUID] | None:
    """Keyset cursor: the (created_at, id) of the last tenant of the previous page."""
    if not token:
        return None
    try:
        created, _, tenant_id = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
        return datetime.fromisoformat(created), uuid.UUID(tenant_id)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValidationError("page_token", "is not a token returned by ListTenants") from exc


def _encode_page_token(tenant: Tenant) -> str:
    return base64.urlsafe_b64encode(
        f"{tenant.created_at.isoformat()}|{tenant.id}".encode()
    ).decode()


class TenantRegistry:
    """The registry's use cases, each in its own transaction."""

    def __init__(self, pool: Database, key_ring: Cipher, tenants: TenantRepository) -> None:
        self._pool = pool
        self._keys = key_ring
        self._repo = tenants

    async def create_tenant(
        self,
        *,
        name: str,
        slug: str,
        rate_limit_per_minute: int | None = None,
        allowed_domains: list[str] | None = None,
    ) -> Tenant:
        values = {
            "name": validate_name(name),
            "slug": validate_slug(slug),
            "rate_limit_per_minute": validate_rate_limit(rate_limit_per_minute),
            "allowed_domains": validate_domains(allowed_domains or []),
        }
        async with self._pool.acquire() as conn, conn.transaction():
            tenant = await self._repo.insert_tenant(conn, **values)  # type: ignore[arg-type]
        log.info("tenant created", tenant_id=str(tenant.id), slug=tenant.slug)
        return tenant

    async def get_tenant(self, ref: str) -> Tenant:
        async with self._pool.acquire() as conn:
            return await self._repo.get_tenant(conn, ref)

    async def list_tenants(self, *, page_size: int = 50, page_token: str = "") -> Page:
        size = min(max(page_size, 1), MAX_PAGE_SIZE) if page_size else 50
        after = _decode_page_token(page_token)
        async with self._pool.acquire() as conn:
            tenants = await self._repo.list_tenants(conn, after=after, limit=size + 1)
        next_token = ""
        if len(tenants) > size:
            tenants = tenants[:size]
            next_token = _encode_page_token(tenants[-1])
        return Page(tenants, next_token)

    async def create_funnel(
        self,
        tenant_ref: str,
        *,
        name: str,
        slug: str,
        lookback_days: int = 0,
        landing_url: str = "",
        checkout_domains: list[str] | None = None,
        test_event_code: str = "",
        pending_payment_event: str = "",
    ) -> Funnel:
        values = {
            "name": validate_name(name),
            "slug": validate_slug(slug),
            "lookback_days": validate_lookback_days(lookback_days),
            "landing_url": validate_landing_url(landing_url),
            "checkout_domains": validate_domains(checkout_domains or [], "checkout_domains"),
            "test_event_code": validate_test_event_code(test_event_code),
            "pending_payment_event": validate_pending_payment_event(pending_payment_event),
        }
        async with self._pool.acquire() as conn, conn.transaction():
            tenant = await self._repo.get_tenant(conn, tenant_ref)
            return await self._repo.insert_funnel(conn, tenant.id, **values)

    async def update_tenant(self, tenant_ref: str, requested: Mapping[str, Any]) -> Tenant:
        """Change the fields in ``requested`` (an update mask with values); see
        ``validated_changes`` for what an empty value means."""
        changes = validated_changes(requested, TENANT_UPDATABLE)
        async with self._pool.acquire() as conn, conn.transaction():
            tenant = await self._repo.get_tenant(conn, tenant_ref)
            tenant = await self._repo.update_tenant(conn, tenant.id, changes)
        log.info("tenant updated", tenant_id=str(tenant.id), fields=sorted(changes))
        return tenant

    async def update_funnel(
        self, tenant_ref: str, funnel_slug: str, requested: Mapping[str, Any]
    ) -> Funnel:
        changes = validated_changes(requested, FUNNEL_UPDATABLE)
        async with self._pool.acquire() as conn, conn.transaction():
            tenant = await self._repo.get_tenant(conn, tenant_ref)
            funnel = await self._repo.get_funnel(conn, tenant.id, funnel_slug.strip())
            funnel = await self._repo.update_funnel(conn, funnel, changes)
        log.info("funnel updated", funnel_id=str(funnel.id), fields=sorted(changes))
        return funnel

    async def list_funnels(self, tenant_ref: str) -> list[Funnel]:
        async with self._pool.acquire() as conn:
            tenant = await self._repo.get_tenant(conn, tenant_ref)
            return await self._repo.list_funnels(conn, tenant.id)

    async def set_gateway_credential(
        self, tenant_ref: str, *, gateway: str, secret: str, signing_secret: str = ""
    ) -> Tenant:
        provider = validate_gateway(gateway)
        payload = {"secret": validate_secret(secret, "secret")}
        if signing_secret.strip():
            payload["signing_secret"] = validate_secret(signing_secret, "signing_secret")
        async with self._pool.acquire() as conn, conn.transaction():
            tenant = await self._repo.get_tenant(conn, tenant_ref)
            aad = credential_associated_data(tenant.id, "gateway", provider, None)
            await self._repo.upsert_credential(
                conn,
                tenant_id=tenant.id,
                funnel_id=None,
                kind="gateway",
                provider=provider,
                public={},
                sealed=self._keys.seal(payload, aad),
            )
            tenant = await self._repo.get_tenant(conn, str(tenant.id))
        log.info("gateway credential set", tenant_id=str(tenant.id), gateway=provider)
        return tenant

    async def set_meta_credential(
        self,
        tenant_ref: str,
        *,
        pixel_id: str,
        access_token: str,
        test_event_code: str = "",
        funnel_slug: str = "",
    ) -> tuple[Tenant, Funnel | None]:
        public = {"pixel_id": validate_pixel_id(pixel_id)}
        code = validate_test_event_code(test_event_code)
        if code:
            public["test_event_code"] = code
        payload = {"access_token": validate_secret(access_token, "access_token")}
        async with self._pool.acquire() as conn, conn.transaction():
            tenant = await self._repo.get_tenant(conn, tenant_ref)
            funnel_id = None
            if funnel_slug.strip():
                funnel_id = (await self._repo.get_funnel(conn, tenant.id, funnel_slug.strip())).id
            aad = credential_associated_data(tenant.id, "meta", "meta", funnel_id)
            await self._repo.upsert_credential(
                conn,
                tenant_id=tenant.id,
                funnel_id=funnel_id,
                kind="meta",
                provider="meta",
                public=public,
                sealed=self._keys.seal(payload, aad),
            )
            tenant = await self._repo.get_tenant(conn, str(tenant.id))
            funnel = (
                await self._repo.get_funnel(conn, tenant.id, funnel_slug.strip())
                if funnel_id
                else None
            )
        log.info("meta credential set", tenant_id=str(tenant.id), pixel_id=public["pixel_id"])
        return tenant, funnel

    async def tenant_view(self, tenant_ref: str) -> TenantView:
        """The tenant, its funnels and Meta pixels, read without opening any secret."""
        async with self._pool.acquire() as conn:
            tenant = await self._repo.get_tenant(conn, tenant_ref)
            funnels = await self._repo.list_funnels(conn, tenant.id)
            rows = await self._repo.credentials(conn, tenant.id)
        tenant_pixel: MetaPixel | None = None
        funnel_pixel: dict[object, MetaPixel] = {}
        for row in rows:
            if row["kind"] == "gateway":
                continue
            public = row["public"]
            pixel = MetaPixel(public["pixel_id"], public.get("test_event_code"))
            if row["funnel_id"] is None:
                tenant_pixel = pixel
            else:
                funnel_pixel[row["funnel_id"]] = pixel
        return TenantView(tenant, tenant_pixel, [(f, funnel_pixel.get(f.id)) for f in funnels])

    async def tenant_config(self, tenant_ref: str) -> TenantConfig:
        """Everything an internal caller needs about a tenant, secrets opened."""
        async with self._pool.acquire() as conn:
            tenant = await self._repo.get_tenant(conn, tenant_ref)
            funnels = await self._repo.list_funnels(conn, tenant.id)
            rows = await self._repo.credentials(conn, tenant.id)
        gateways: list[GatewayCredential] = []
        tenant_meta: MetaDestination | None = None
        funnel_meta: dict[object, MetaDestination] = {}
        broken: list[BrokenCredential] = []
        for row in rows:
            aad = credential_associated_data(
                tenant.id, row["kind"], row["provider"], row["funnel_id"]
            )
            try:
                secret = self._keys.open(
                    Sealed(row["key_id"], row["nonce"], row["ciphertext"]), aad
                )
            except KeyRingError as exc:
                # One unreadable credential must not take the tenant's others down with it.
                broken.append(
                    BrokenCredential(row["kind"], row["provider"], row["funnel_id"], str(exc))
                )
                log.error(
                    "credential cannot be decrypted; left out of the tenant config",
                    tenant_id=str(tenant.id),
                    kind=row["kind"],
                    provider=row["provider"],
                    funnel_id=str(row["funnel_id"] or ""),
                    key_id=row["key_id"],
                    error=str(exc),
                )
                continue
            if row["kind"] == "gateway":
                gateways.append(
                    GatewayCredential(
                        row["provider"], secret["secret"], secret.get("signing_secret")
                    )
                )
                continue
            public = row["public"]
            meta = MetaDestination(
                public["pixel_id"], secret["access_token"], public.get("test_event_code")
            )
            if row["funnel_id"] is None:
                tenant_meta = meta
            else:
                funnel_meta[row["funnel_id"]] = meta
        return TenantConfig(
            tenant=tenant,
            gateways=gateways,
            meta=tenant_meta,
            funnels=[(f, funnel_meta.get(f.id)) for f in funnels],
            broken=broken,
        )

    async def rotate_keys(self) -> int:
        """Reseal every credential not sealed with the primary key; returns how many."""
        count = 0
        async with self._pool.acquire() as conn, conn.transaction():
            for row in await self._repo.credentials_not_sealed_with(conn, self._keys.primary):
                aad = credential_associated_data(
                    row["tenant_id"], row["kind"], row["provider"], row["funnel_id"]
                )
                secret = self._keys.open(
                    Sealed(row["key_id"], row["nonce"], row["ciphertext"]), aad
                )
                await self._repo.reseal(conn, row["id"], self._keys.seal(secret, aad))
                count += 1
        log.info("credentials resealed", count=count, key_id=self._keys.primary)
        return count
