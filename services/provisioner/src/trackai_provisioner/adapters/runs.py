"""PostgreSQL storage of provisioning runs and their steps (``provisioning_runs``,
``provisioning_steps``), plus the per-funnel advisory lock that keeps two runs apart.

Queries splice in only the constant column lists below; every value is a bind parameter.
"""

# ruff: noqa: S608

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from trackai_provisioner.adapters.repository import Conn
from trackai_provisioner.domain.provisioning import (
    STEPS,
    UNFINISHED,
    Resource,
    Run,
    RunStatus,
    StepRecord,
    StepStatus,
)

_RUN_COLUMNS = """
    id, tenant_id, funnel_id, status, custom_domain, resources, snippets, error, approved_by,
    approved_at, test_event_id, test_event_at, published_versions, previous_live_versions,
    rolled_back_by, rolled_back_at, restored_versions, created_at, updated_at
"""
_STEP_COLUMNS = """
    step, position, status, attempts, detail, state, created, request, response, started_at,
    updated_at
"""


def _step(row: asyncpg.Record) -> StepRecord:
    return StepRecord(
        step=row["step"],
        position=row["position"],
        status=StepStatus(row["status"]),
        attempts=row["attempts"],
        detail=row["detail"],
        state=_json(row["state"]),
        created=[Resource.from_json(r) for r in _json(row["created"])],
        request=_json(row["request"]),
        response=_json(row["response"]),
        started_at=row["started_at"],
        updated_at=row["updated_at"],
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


class PostgresRunRepository:
    async def lock_funnel(self, conn: Conn, funnel_id: uuid.UUID) -> bool:
        """Session-level advisory lock held for the whole run; released if the process dies."""
        return bool(
            await conn.fetchval(
                "SELECT pg_try_advisory_lock(hashtextextended('provisioning:' || $1::text, 0))",
                str(funnel_id),
            )
        )

    async def unlock_funnel(self, conn: Conn, funnel_id: uuid.UUID) -> None:
        await conn.execute(
            "SELECT pg_advisory_unlock(hashtextextended('provisioning:' || $1::text, 0))",
            str(funnel_id),
        )

    async def unfinished_run(self, conn: Conn, funnel_id: uuid.UUID) -> Run | None:
        row = await conn.fetchrow(
            f"SELECT {_RUN_COLUMNS} FROM provisioner.provisioning_runs "
            "WHERE funnel_id = $1 AND status = ANY($2::text[])",
            funnel_id,
            [s.value for s in UNFINISHED],
        )
        return await self._with_steps(conn, row) if row else None

    async def latest_run(self, conn: Conn, funnel_id: uuid.UUID) -> Run | None:
        row = await conn.fetchrow(
            f"SELECT {_RUN_COLUMNS} FROM provisioner.provisioning_runs WHERE funnel_id = $1 "
            "ORDER BY created_at DESC LIMIT 1",
            funnel_id,
        )
        return await self._with_steps(conn, row) if row else None

    async def get_run(self, conn: Conn, run_id: uuid.UUID, *, for_update: bool = False) -> Run:
        row = await conn.fetchrow(
            f"SELECT {_RUN_COLUMNS} FROM provisioner.provisioning_runs WHERE id = $1"
            + (" FOR UPDATE" if for_update else ""),
            run_id,
        )
        if row is None:
            raise LookupError(f"no provisioning run {run_id}")
        return await self._with_steps(conn, row)

    async def _with_steps(self, conn: Conn, row: asyncpg.Record) -> Run:
        steps = await conn.fetch(
            f"SELECT {_STEP_COLUMNS} FROM provisioner.provisioning_steps WHERE run_id = $1 "
            "ORDER BY position",
            row["id"],
        )
        return Run(
            id=row["id"],
            tenant_id=row["tenant_id"],
            funnel_id=row["funnel_id"],
            status=RunStatus(row["status"]),
            custom_domain=row["custom_domain"],
            resources=_json(row["resources"]),
            steps={s["step"]: _step(s) for s in steps},
            snippets=_json(row["snippets"]),
            error=row["error"],
            approved_by=row["approved_by"],
            approved_at=row["approved_at"],
            test_event_id=row["test_event_id"],
            test_event_at=row["test_event_at"],
            published_versions=_json(row["published_versions"]),
            previous_live_versions=_json(row["previous_live_versions"]),
            rolled_back_by=row["rolled_back_by"],
            rolled_back_at=row["rolled_back_at"],
            restored_versions=_json(row["restored_versions"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    async def create_run(
        self, conn: Conn, *, tenant_id: uuid.UUID, funnel_id: uuid.UUID, custom_domain: str
    ) -> Run:
        run_id = uuid.uuid4()
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO provisioner.provisioning_runs (id, tenant_id, funnel_id, status, "
                "custom_domain) VALUES ($1, $2, $3, 'running', $4)",
                run_id,
                tenant_id,
                funnel_id,
                custom_domain,
            )
            await conn.executemany(
                "INSERT INTO provisioner.provisioning_steps (run_id, step, position, status) "
                "VALUES ($1, $2, $3, 'pending')",
                [(run_id, step, i) for i, step in enumerate(STEPS)],
            )
        return await self.get_run(conn, run_id)

    async def set_run_status(
        self, conn: Conn, run_id: uuid.UUID, status: RunStatus, error: str | None = None
    ) -> None:
        await conn.execute(
            "UPDATE provisioner.provisioning_runs SET status = $2, error = $3, updated_at = now() "
            "WHERE id = $1",
            run_id,
            status.value,
            error,
        )

    async def start_step(self, conn: Conn, run_id: uuid.UUID, step: str) -> StepRecord:
        row = await conn.fetchrow(
            "UPDATE provisioner.provisioning_steps SET status = 'running', "
            "attempts = attempts + 1, started_at = coalesce(started_at, now()), detail = '', "
            f"updated_at = now() WHERE run_id = $1 AND step = $2 RETURNING {_STEP_COLUMNS}",
            run_id,
            step,
        )
        if row is None:
            raise LookupError(f"run {run_id} has no step {step!r}")
        return _step(row)

    async def save_step_state(
        self, conn: Conn, run_id: uuid.UUID, step: str, state: dict[str, Any]
    ) -> None:
        await conn.execute(
            "UPDATE provisioner.provisioning_steps SET state = $3::jsonb, updated_at = now() "
            "WHERE run_id = $1 AND step = $2",
            run_id,
            step,
            state,
        )

    async def add_created(
        self, conn: Conn, run_id: uuid.UUID, step: str, resource: Resource
    ) -> None:
        """Record a resource the moment it exists, so a crash right after still rolls it back."""
        await conn.execute(
            "UPDATE provisioner.provisioning_steps SET created = created || $3::jsonb, "
            "updated_at = now() WHERE run_id = $1 AND step = $2",
            run_id,
            step,
            [resource.as_json()],
        )

    async def finish_step(
        self,
        conn: Conn,
        run_id: uuid.UUID,
        step: str,
        *,
        status: StepStatus,
        detail: str,
        request: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
        outputs: dict[str, Any] | None = None,
    ) -> None:
        async with conn.transaction():
            await conn.execute(
                "UPDATE provisioner.provisioning_steps SET status = $3, detail = $4, "
                "request = coalesce($5::jsonb, request), response = coalesce($6::jsonb, response), "
                "finished_at = now(), updated_at = now() WHERE run_id = $1 AND step = $2",
                run_id,
                step,
                status.value,
                detail,
                request,
                response,
            )
            if outputs:
                await conn.execute(
                    "UPDATE provisioner.provisioning_runs SET resources = resources || $2::jsonb, "
                    "updated_at = now() WHERE id = $1",
                    run_id,
                    outputs,
                )

    async def set_step_status(
        self, conn: Conn, run_id: uuid.UUID, step: str, status: StepStatus, detail: str
    ) -> None:
        await conn.execute(
            "UPDATE provisioner.provisioning_steps SET status = $3, detail = $4, "
            "updated_at = now() WHERE run_id = $1 AND step = $2",
            run_id,
            step,
            status.value,
            detail,
        )

    async def set_snippets(
        self, conn: Conn, run_id: uuid.UUID, snippets: list[dict[str, str]]
    ) -> None:
        await conn.execute(
            "UPDATE provisioner.provisioning_runs SET snippets = $2::jsonb, updated_at = now() "
            "WHERE id = $1",
            run_id,
            snippets,
        )

    async def record_test_event(
        self, conn: Conn, run_id: uuid.UUID, event_id: str, at: datetime
    ) -> None:
        await conn.execute(
            "UPDATE provisioner.provisioning_runs SET test_event_id = $2, test_event_at = $3, "
            "updated_at = now() WHERE id = $1",
            run_id,
            event_id,
            at,
        )

    async def record_approval(
        self, conn: Conn, run_id: uuid.UUID, approved_by: str, note: str, at: datetime
    ) -> None:
        await conn.execute(
            "UPDATE provisioner.provisioning_runs SET approved_by = $2, approval_note = $3, "
            "approved_at = $4, updated_at = now() WHERE id = $1",
            run_id,
            approved_by,
            note or None,
            at,
        )

    async def record_publish(
        self,
        conn: Conn,
        run_id: uuid.UUID,
        published: dict[str, str],
        previous: dict[str, str],
        at: datetime,
    ) -> None:
        await conn.execute(
            "UPDATE provisioner.provisioning_runs SET status = 'published', "
            "published_versions = $2::jsonb, previous_live_versions = $3::jsonb, "
            "published_at = $4, updated_at = now() WHERE id = $1",
            run_id,
            published,
            previous,
            at,
        )

    async def record_publish_rollback(
        self,
        conn: Conn,
        run_id: uuid.UUID,
        *,
        rolled_back_by: str,
        note: str,
        restored: dict[str, str],
        at: datetime,
    ) -> bool:
        """Mark a published run as rolled back; False when it was no longer published."""
        status = await conn.execute(
            "UPDATE provisioner.provisioning_runs SET status = 'publish_rolled_back', "
            "rolled_back_by = $2, rollback_note = $3, restored_versions = $4::jsonb, "
            "rolled_back_at = $5, updated_at = now() WHERE id = $1 AND status = 'published'",
            run_id,
            rolled_back_by,
            note or None,
            restored,
            at,
        )
        return bool(status == "UPDATE 1")
