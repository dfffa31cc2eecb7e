"""Sessions, transcripts and escalations in PostgreSQL (schema ``agent``). Everything written is
scrubbed first; an escalation, its session's state and its support-webhook message are written
in one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from trackai_agent.domain.model import Entry, Escalation, SessionRecord
from trackai_agent.domain.redaction import scrub, scrub_text
from trackai_kit.outbox import enqueue

SUPPORT_WEBHOOK_ROUTE = "support_webhook"
_SESSION_COLUMNS = (
    "id::text, coalesce(tenant_id::text, '') AS tenant_id, funnel_slug, state, step, "
    "consecutive_failures, webhook_verified, setup_started_at, prompt_tokens, "
    "completion_tokens, created_at"
)
_ESCALATION_COLUMNS = (
    "id::text, session_id::text, coalesce(tenant_id::text, '') AS tenant_id, step, reason, "
    "failure_count, state, summary, transcript_url, created_at, acknowledged_by"
)


def _session(row: asyncpg.Record) -> SessionRecord:
    return SessionRecord(**dict(row))


def _escalation(row: asyncpg.Record) -> Escalation:
    return Escalation(**dict(row))


def _json(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Scrubbed; the pool's JSONB codec encodes it."""
    return None if value is None else dict(scrub(value))


class PostgresSessionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(
        self, tenant_id: str, funnel_slug: str, opened_by: str, channel: str
    ) -> SessionRecord:
        row = await self._pool.fetchrow(
            f"INSERT INTO agent.sessions (tenant_id, funnel_slug, opened_by, channel) "  # noqa: S608
            f"VALUES ($1, $2, $3, $4) RETURNING {_SESSION_COLUMNS}",
            uuid.UUID(tenant_id),
            funnel_slug,
            opened_by,
            channel,
        )
        assert row is not None
        return _session(row)

    async def get(self, session_id: str, tenant_id: str) -> SessionRecord | None:
        row = await self._pool.fetchrow(
            f"SELECT {_SESSION_COLUMNS} FROM agent.sessions "  # noqa: S608
            "WHERE id = $1 AND ($2 = '' OR tenant_id::text = $2)",
            _uuid(session_id),
            tenant_id,
        )
        return _session(row) if row else None

    async def entries(self, session_id: str) -> list[Entry]:
        rows = await self._pool.fetch(
            "SELECT seq, role, content, tool_name, tool_call_id, tool_arguments, tool_result, "
            "outcome, duration_ms, prompt_tokens, completion_tokens, event_id, created_at "
            "FROM agent.transcript_entries WHERE session_id = $1 ORDER BY seq",
            _uuid(session_id),
        )
        return [Entry(**dict(row)) for row in rows]

    async def record_turn(self, session: SessionRecord, entries: Sequence[Entry]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await self._write(conn, session, entries)

    async def _write(self, conn: Any, session: SessionRecord, entries: Sequence[Entry]) -> None:
        # Lock the session row: concurrent turns of one session get consecutive seq numbers.
        await conn.execute(
            "SELECT 1 FROM agent.sessions WHERE id = $1 FOR UPDATE", _uuid(session.id)
        )
        last = await conn.fetchval(
            "SELECT coalesce(max(seq), 0) FROM agent.transcript_entries WHERE session_id = $1",
            _uuid(session.id),
        )
        rows = []
        for offset, entry in enumerate(entries, start=1):
            entry.seq = int(last or 0) + offset
            rows.append(
                (
                    _uuid(session.id),
                    entry.seq,
                    entry.role,
                    scrub_text(entry.content),
                    entry.tool_name,
                    entry.tool_call_id,
                    _json(entry.tool_arguments),
                    _json(entry.tool_result),
                    entry.outcome,
                    entry.duration_ms,
                    entry.prompt_tokens,
                    entry.completion_tokens,
                    entry.event_id,
                )
            )
        await conn.executemany(
            "INSERT INTO agent.transcript_entries (session_id, seq, role, content, tool_name, "
            "tool_call_id, tool_arguments, tool_result, outcome, duration_ms, prompt_tokens, "
            "completion_tokens, event_id) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10, $11, $12, $13)",
            rows,
        )
        await conn.execute(
            "UPDATE agent.sessions SET state = $2, step = $3, consecutive_failures = $4, "
            "webhook_verified = $5, prompt_tokens = $6, completion_tokens = $7, "
            "updated_at = now() WHERE id = $1",
            _uuid(session.id),
            session.state,
            session.step,
            session.consecutive_failures,
            session.webhook_verified,
            session.prompt_tokens,
            session.completion_tokens,
        )

    async def record_escalation(
        self,
        session: SessionRecord,
        entries: Sequence[Entry],
        escalation: Escalation,
        webhook_body: bytes | None,
    ) -> Escalation:
        async with self._pool.acquire() as conn, conn.transaction():
            await self._write(conn, session, entries)
            row = await conn.fetchrow(
                "INSERT INTO agent.escalations (session_id, tenant_id, step, reason, "  # noqa: S608
                "failure_count, summary, transcript_url) "
                "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7) "
                "ON CONFLICT (session_id) WHERE state = 'open' DO UPDATE "
                "SET failure_count = EXCLUDED.failure_count, summary = EXCLUDED.summary "
                f"RETURNING {_ESCALATION_COLUMNS}",
                _uuid(session.id),
                _uuid(session.tenant_id),
                escalation.step,
                scrub_text(escalation.reason),
                escalation.failure_count,
                _json(escalation.summary),
                escalation.transcript_url,
            )
            assert row is not None
            stored = _escalation(row)
            if webhook_body is not None:
                await enqueue(
                    conn,
                    schema="agent",
                    routing_key=SUPPORT_WEBHOOK_ROUTE,
                    message_id=f"escalation:{stored.id}:{escalation.failure_count}",
                    message_type="trackai.agent.v1.Escalation",
                    body=webhook_body,
                )
        return stored

    async def escalations(
        self, state: str, *, after: tuple[datetime, str] | None = None, limit: int | None = None
    ) -> list[Escalation]:
        """Oldest first, keyset-paged on (created_at, id) after ``after``."""
        rows = await self._pool.fetch(
            f"SELECT {_ESCALATION_COLUMNS} FROM agent.escalations "  # noqa: S608
            "WHERE CASE WHEN $1 = '' THEN state <> 'resolved' ELSE state = $1 END "
            "AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid)) "
            "ORDER BY created_at, id LIMIT $4",
            state,
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )
        return [_escalation(row) for row in rows]

    async def take_over(self, session_id: str, operator: str) -> Escalation | None:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE agent.escalations SET state = 'acknowledged', acknowledged_by = $2, "  # noqa: S608
                "acknowledged_at = now() WHERE session_id = $1 AND state = 'open' "
                f"RETURNING {_ESCALATION_COLUMNS}",
                _uuid(session_id),
                operator,
            )
            if row is None:
                return None
            session = await self._locked(conn, session_id)
            await self._write(
                conn,
                session,
                [Entry("operator", f"O especialista {operator} assumiu a conversa.")],
            )
        return _escalation(row)

    async def resume(self, session_id: str, operator: str) -> SessionRecord | None:
        async with self._pool.acquire() as conn, conn.transaction():
            session = await self._locked(conn, session_id)
            if session.state != "escalated":
                return None
            await conn.execute(
                "UPDATE agent.escalations SET state = 'resolved', resolved_at = now(), "
                "acknowledged_by = coalesce(acknowledged_by, $2), "
                "acknowledged_at = coalesce(acknowledged_at, now()) "
                "WHERE session_id = $1 AND state <> 'resolved'",
                _uuid(session_id),
                operator,
            )
            session.state = "active"
            session.consecutive_failures = 0
            await self._write(
                conn,
                session,
                [
                    Entry(
                        "operator",
                        f"O especialista {operator} devolveu a conversa ao assistente.",
                    )
                ],
            )
        return session

    async def current(self, tenant_id: str, funnel_slug: str) -> SessionRecord | None:
        row = await self._pool.fetchrow(
            f"SELECT {_SESSION_COLUMNS} FROM agent.sessions "  # noqa: S608
            "WHERE tenant_id = $1 AND state <> 'closed' AND ($2 = '' OR funnel_slug = $2) "
            "ORDER BY created_at DESC, id DESC LIMIT 1",
            _uuid(tenant_id),
            funnel_slug,
        )
        return _session(row) if row else None

    async def open_escalation(self, session_id: str) -> Escalation | None:
        row = await self._pool.fetchrow(
            f"SELECT {_ESCALATION_COLUMNS} FROM agent.escalations "  # noqa: S608
            "WHERE session_id = $1 AND state <> 'resolved' ORDER BY created_at DESC LIMIT 1",
            _uuid(session_id),
        )
        return _escalation(row) if row else None

    async def post_operator_message(
        self, session_id: str, operator: str, content: str
    ) -> Entry | None:
        async with self._pool.acquire() as conn, conn.transaction():
            session = await self._locked(conn, session_id)
            taken = await conn.fetchval(
                "SELECT 1 FROM agent.escalations WHERE session_id = $1 AND state = 'acknowledged'",
                _uuid(session_id),
            )
            if session.state != "escalated" or taken is None:
                return None
            entry = Entry("operator", content)
            await self._write(conn, session, [entry])
        return entry

    async def _locked(self, conn: Any, session_id: str) -> SessionRecord:
        row = await conn.fetchrow(
            f"SELECT {_SESSION_COLUMNS} FROM agent.sessions WHERE id = $1 FOR UPDATE",  # noqa: S608
            _uuid(session_id),
        )
        if row is None:
            raise LookupError(session_id)
        return _session(row)


def _uuid(value: str) -> uuid.UUID:
    return uuid.UUID(value)
