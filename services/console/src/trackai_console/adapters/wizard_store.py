"""PostgreSQL store of the setup wizard's position per tenant (``console.setup_wizards``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from trackai_console.domain.wizard import WizardRecord

_COLUMNS = "tenant_id, step, started_at, funnel_slug, gateway, run_id, approved_by, approved_at"


class PostgresWizardStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def load(self, tenant_id: uuid.UUID) -> WizardRecord | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM console.setup_wizards WHERE tenant_id = $1",  # noqa: S608
            tenant_id,
        )
        return WizardRecord(**dict(row)) if row is not None else None

    async def save(self, record: WizardRecord) -> None:
        await self._pool.execute(
            f"""
            INSERT INTO console.setup_wizards ({_COLUMNS})
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (tenant_id) DO UPDATE SET
                step = EXCLUDED.step, funnel_slug = EXCLUDED.funnel_slug,
                gateway = EXCLUDED.gateway, run_id = EXCLUDED.run_id,
                approved_by = EXCLUDED.approved_by, approved_at = EXCLUDED.approved_at,
                updated_at = now()
            """,  # noqa: S608 - only the constant column list is spliced
            record.tenant_id,
            record.step,
            record.started_at,
            record.funnel_slug,
            record.gateway,
            record.run_id,
            record.approved_by,
            record.approved_at,
        )

    async def load_many(self, tenant_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, WizardRecord]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM console.setup_wizards WHERE tenant_id = ANY($1::uuid[])",  # noqa: S608
            list(tenant_ids),
        )
        return {row["tenant_id"]: WizardRecord(**dict(row)) for row in rows}
