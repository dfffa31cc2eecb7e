"""PostgreSQL storage of tenants, funnels and sealed credentials (schema ``provisioner``).

Queries splice in only the constant column lists below; every value is a bind parameter.
"""

# ruff: noqa: S608

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from trackai_provisioner.domain.tenants import AlreadyExistsError, Funnel, NotFoundError, Tenant
from trackai_provisioner.service_layer.ports import Sealed

_TENANT_COLUMNS = """
    t.id, t.slug, t.name, t.rate_limit_per_minute, t.allowed_domains, t.created_at,
    coalesce((SELECT array_agg(c.provider ORDER BY c.provider) FROM provisioner.credentials c
              WHERE c.tenant_id = t.id AND c.kind = 'gateway'), '{}') AS gateways,
    EXISTS (SELECT 1 FROM provisioner.credentials c
            WHERE c.tenant_id = t.id AND c.kind = 'meta' AND c.funnel_id IS NULL) AS meta_configured
"""

_FUNNEL_COLUMNS = """
    f.id, f.tenant_id, f.slug, f.name, f.lookback_days, f.landing_url, f.checkout_domains,
    f.test_event_code, f.status_mapping->>'pending_payment_event' AS pending_payment_event,
    (SELECT c.public->>'pixel_id' FROM provisioner.credentials c
     WHERE c.funnel_id = f.id AND c.kind = 'meta') AS pixel_id
"""


#: A connection, whether taken from a pool or opened directly.
Conn = asyncpg.Connection | PoolConnectionProxy


def _tenant(row: asyncpg.Record) -> Tenant:
    return Tenant(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        rate_limit_per_minute=row["rate_limit_per_minute"],
        allowed_domains=list(row["allowed_domains"]),
        created_at=row["created_at"],
        configured_gateways=list(row["gateways"]),
        meta_configured=row["meta_configured"],
    )


def _funnel(row: asyncpg.Record) -> Funnel:
    return Funnel(
        id=row["id"],
        tenant_id=row["tenant_id"],
        slug=row["slug"],
        name=row["name"],
        lookback_days=row["lookback_days"],
        landing_url=row["landing_url"],
        checkout_domains=list(row["checkout_domains"]),
        test_event_code=row["test_event_code"],
        pixel_id=row["pixel_id"],
        pending_payment_event=row["pending_payment_event"],
    )


def _status_mapping(pending_payment_event: str | None) -> dict[str, str]:
    """The ``status_mapping`` document of a new funnel (only non-default keys are stored)."""
    return {"pending_payment_event": pending_payment_event} if pending_payment_event else {}


class PostgresTenantRepository:
    """Reads and writes the registry; every method runs on the given connection."""

    async def insert_tenant(
        self,
        conn: Conn,
        *,
        slug: str,
        name: str,
        rate_limit_per_minute: int | None,
        allowed_domains: list[str],
    ) -> Tenant:
        tenant_id = uuid.uuid4()
        try:
            await conn.execute(
                "INSERT INTO provisioner.tenants (id, slug, name, rate_limit_per_minute, "
                "allowed_domains) VALUES ($1, $2, $3, $4, $5)",
                tenant_id,
                slug,
                name,
                rate_limit_per_minute,
                allowed_domains,
            )
        except asyncpg.UniqueViolationError as exc:
            raise AlreadyExistsError(f"a tenant with slug {slug!r} already exists") from exc
        return await self.get_tenant(conn, str(tenant_id))

    async def get_tenant(self, conn: Conn, ref: str) -> Tenant:
        """Find a tenant by id (UUID) or slug."""
        try:
            tenant_id: uuid.UUID | None = uuid.UUID(ref)
        except ValueError:
            tenant_id = None
        if tenant_id is not None:
            row = await conn.fetchrow(
                f"SELECT {_TENANT_COLUMNS} FROM provisioner.tenants t WHERE t.id = $1", tenant_id
            )
        else:
            row = await conn.fetchrow(
                f"SELECT {_TENANT_COLUMNS} FROM provisioner.tenants t WHERE t.slug = $1",
                ref.strip().lower(),
            )
        if row is None:
            raise NotFoundError(f"no tenant with id or slug {ref!r}")
        return _tenant(row)

    async def list_tenants(
        self,
        conn: Conn,
        *,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[Tenant]:
        """Tenants in creation order, after the keyset cursor ``after``."""
        if after is None:
            rows = await conn.fetch(
                f"SELECT {_TENANT_COLUMNS} FROM provisioner.tenants t "
                "ORDER BY t.created_at, t.id LIMIT $1",
                limit,
            )
        else:
            rows = await conn.fetch(
                f"SELECT {_TENANT_COLUMNS} FROM provisioner.tenants t "
                "WHERE (t.created_at, t.id) > ($1, $2) ORDER BY t.created_at, t.id LIMIT $3",
                after[0],
                after[1],
                limit,
            )
        return [_tenant(r) for r in rows]

    async def insert_funnel(self, conn: Conn, tenant_id: uuid.UUID, **values: Any) -> Funnel:
        funnel_id = uuid.uuid4()
        try:
            await conn.execute(
                "INSERT INTO provisioner.funnels (id, tenant_id, slug, name, lookback_days, "
                "landing_url, checkout_domains, test_event_code, status_mapping) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)",
                funnel_id,
                tenant_id,
                values["slug"],
                values["name"],
                values["lookback_days"],
                values["landing_url"],
                values["checkout_domains"],
                values["test_event_code"],
                _status_mapping(values.get("pending_payment_event")),
            )
        except asyncpg.UniqueViolationError as exc:
            raise AlreadyExistsError(
                f"the tenant already has a funnel with slug {values['slug']!r}"
            ) from exc
        return await self.get_funnel(conn, tenant_id, values["slug"])

    async def update_tenant(
        self, conn: Conn, tenant_id: uuid.UUID, changes: dict[str, Any]
    ) -> Tenant:
        """Set the columns named in ``changes`` (validated values); the others stay as they are.

        One static statement with a "change it" flag per column, so no SQL is built from input.
        """
        await conn.execute(
            "UPDATE provisioner.tenants SET "
            "name = CASE WHEN $2 THEN $3 ELSE name END, "
            "rate_limit_per_minute = CASE WHEN $4 THEN $5::integer ELSE rate_limit_per_minute END, "
            "allowed_domains = CASE WHEN $6 THEN $7::text[] ELSE allowed_domains END, "
            "updated_at = now() WHERE id = $1",
            tenant_id,
            "name" in changes,
            changes.get("name"),
            "rate_limit_per_minute" in changes,
            changes.get("rate_limit_per_minute"),
            "allowed_domains" in changes,
            changes.get("allowed_domains"),
        )
        return await self.get_tenant(conn, str(tenant_id))

    async def update_funnel(self, conn: Conn, funnel: Funnel, changes: dict[str, Any]) -> Funnel:
        """Set the fields named in ``changes``; ``pending_payment_event`` lives in the
        ``status_mapping`` document, whose other keys are kept."""
        await conn.execute(
            "UPDATE provisioner.funnels SET "
            "name = CASE WHEN $2 THEN $3 ELSE name END, "
            "lookback_days = CASE WHEN $4 THEN $5::integer ELSE lookback_days END, "
            "landing_url = CASE WHEN $6 THEN $7::text ELSE landing_url END, "
            "checkout_domains = CASE WHEN $8 THEN $9::text[] ELSE checkout_domains END, "
            "test_event_code = CASE WHEN $10 THEN $11::text ELSE test_event_code END, "
            "status_mapping = CASE WHEN NOT $12 THEN status_mapping "
            "    WHEN $13::text IS NULL THEN status_mapping - 'pending_payment_event' "
            "    ELSE status_mapping || jsonb_build_object('pending_payment_event', $13::text) "
            "END, "
            "updated_at = now() WHERE id = $1",
            funnel.id,
            "name" in changes,
            changes.get("name"),
            "lookback_days" in changes,
            changes.get("lookback_days"),
            "landing_url" in changes,
            changes.get("landing_url"),
            "checkout_domains" in changes,
            changes.get("checkout_domains"),
            "test_event_code" in changes,
            changes.get("test_event_code"),
            "pending_payment_event" in changes,
            changes.get("pending_payment_event"),
        )
        return await self.get_funnel(conn, funnel.tenant_id, funnel.slug)

    async def get_funnel(self, conn: Conn, tenant_id: uuid.UUID, slug: str) -> Funnel:
        row = await conn.fetchrow(
            f"SELECT {_FUNNEL_COLUMNS} FROM provisioner.funnels f "
            "WHERE f.tenant_id = $1 AND f.slug = $2",
            tenant_id,
            slug,
        )
        if row is None:
            raise NotFoundError(f"the tenant has no funnel with slug {slug!r}")
        return _funnel(row)

    async def list_funnels(self, conn: Conn, tenant_id: uuid.UUID) -> list[Funnel]:
        rows = await conn.fetch(
            f"SELECT {_FUNNEL_COLUMNS} FROM provisioner.funnels f WHERE f.tenant_id = $1 "
            "ORDER BY f.slug",
            tenant_id,
        )
        return [_funnel(r) for r in rows]

    async def upsert_credential(
        self,
        conn: Conn,
        *,
        tenant_id: uuid.UUID,
        funnel_id: uuid.UUID | None,
        kind: str,
        provider: str,
        public: dict[str, str],
        sealed: Sealed,
    ) -> None:
        await conn.execute(
            """
            INSERT INTO provisioner.credentials
                (id, tenant_id, funnel_id, kind, provider, public, key_id, nonce, ciphertext)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9)
            ON CONFLICT (tenant_id, kind, provider,
                         coalesce(funnel_id, '00000000-0000-0000-0000-000000000000'))
            DO UPDATE SET public = EXCLUDED.public, key_id = EXCLUDED.key_id,
                          nonce = EXCLUDED.nonce, ciphertext = EXCLUDED.ciphertext,
                          updated_at = now()
            """,
            uuid.uuid4(),
            tenant_id,
            funnel_id,
            kind,
            provider,
            public,
            sealed.key_id,
            sealed.nonce,
            sealed.ciphertext,
        )

    async def credentials(self, conn: Conn, tenant_id: uuid.UUID) -> list[asyncpg.Record]:
        return list(
            await conn.fetch(
                "SELECT id, funnel_id, kind, provider, public, key_id, nonce, ciphertext "
                "FROM provisioner.credentials WHERE tenant_id = $1 ORDER BY kind, provider",
                tenant_id,
            )
        )

    async def credentials_not_sealed_with(self, conn: Conn, key_id: str) -> list[asyncpg.Record]:
        return list(
            await conn.fetch(
                "SELECT id, tenant_id, funnel_id, kind, provider, key_id, nonce, ciphertext "
                "FROM provisioner.credentials WHERE key_id <> $1 FOR UPDATE",
                key_id,
            )
        )

    async def reseal(self, conn: Conn, credential_id: uuid.UUID, sealed: Sealed) -> None:
        await conn.execute(
            "UPDATE provisioner.credentials SET key_id = $2, nonce = $3, ciphertext = $4, "
            "updated_at = now() WHERE id = $1",
            credential_id,
            sealed.key_id,
            sealed.nonce,
            sealed.ciphertext,
        )
