"""Browser hits into ``ingestion.events`` and their ``IngestEvent`` messages into the outbox, group-
committed as webhooks are: hits that arrive while a statement is in flight are written together by
the next one (ONE statement per batch: rows, outbox messages only for the new rows, one round trip,
one commit), so under load one WAL flush serves many page views; alone, a hit is written at once.
Each caller still returns only after its own hit is committed. Idempotent on (tenant, kind,
event_id): a beacon sent twice is stored and enqueued once.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from trackai_ingestion.adapters.group_commit import GroupCommit
from trackai_ingestion.adapters.messages import INGEST_EVENT_TYPE, hit_event
from trackai_ingestion.domain.collect import BrowserHit
from trackai_ingestion.service_layer.ports import StorageUnavailable
from trackai_kit import outbox
from trackai_kit.postgres import DATABASE_TROUBLE
from trackai_kit.topology import INGEST_EVENTS

SCHEMA = "ingestion"

#: One input row of :data:`_RECORD`: (column, PostgreSQL type), in the order of ``row``.
HIT_INPUT = (
    ("id", "uuid"),
    ("tenant_id", "uuid"),
    ("kind", "text"),
    ("event_name", "text"),
    ("event_id", "text"),
    ("event_time", "timestamptz"),
    ("received_at", "timestamptz"),
    ("email_hash", "text"),
    ("phone_hash", "text"),
    ("session_id", "text"),
    ("page_url", "text"),
    ("referrer", "text"),
    ("fbclid", "text"),
    ("fbc", "text"),
    ("fbp", "text"),
    ("client_ip", "inet"),
    ("user_agent", "text"),
    ("utm", "jsonb"),
    ("tracking", "jsonb"),
    ("funnel_id", "uuid"),
    # The tracking script's first-party visitor id (already a SHA-256-shaped value, sent as is).
    ("external_id_hash", "text"),
    # The outbox message (trackai_kit.outbox.enqueue_params).
    ("message_id", "text"),
    ("exchange", "text"),
    ("routing_key", "text"),
    ("message_type", "text"),
    ("body", "bytea"),
    ("headers", "jsonb"),
)
_EVENT_COLUMNS = ", ".join(column for column, _ in HIT_INPUT[:21])
_UNNEST_ARGS = ", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate(HIT_INPUT, 1))

_RECORD = f"""
WITH input AS (
    SELECT * FROM unnest({_UNNEST_ARGS})
        WITH ORDINALITY AS i({", ".join(column for column, _ in HIT_INPUT)}, n)
), inserted AS (
    INSERT INTO {SCHEMA}.events ({_EVENT_COLUMNS})
    SELECT {_EVENT_COLUMNS} FROM input ORDER BY n
    ON CONFLICT (tenant_id, kind, event_id) WHERE kind <> 'conversion' AND event_id IS NOT NULL
        DO NOTHING
    RETURNING id
), to_enqueue AS (
    SELECT input.* FROM input JOIN inserted USING (id)
), outboxed AS (
    {outbox.enqueue_from_sql(SCHEMA, "to_enqueue")}
)
SELECT n FROM input JOIN inserted USING (id)
"""  # noqa: S608 - identifiers are constants, values are parameters

#: Hits written by one statement at most, and statements in flight at once.
MAX_BATCH = 128
MAX_IN_FLIGHT = 4


@dataclass
class _Pending:
    row: list[Any]
    done: asyncio.Future[bool] = field(repr=False)


class HitStore(GroupCommit[_Pending]):
    """Writes browser hits (see the module docstring)."""

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout_s: float | None = None) -> None:
        super().__init__(pool, acquire_timeout_s=acquire_timeout_s, max_in_flight=MAX_IN_FLIGHT)

    async def record(self, hit: BrowserHit, received_at: datetime) -> str | None:
        """Store and enqueue one hit: its row id, or None when it was already there. Returns
        once committed; StorageUnavailable when the database cannot take it now."""
        row_id, row = hit_row(hit, received_at)
        try:
            stored = await self.write(row)
        except DATABASE_TROUBLE as exc:
            # No connection in time, the database away, or its connection broken mid-statement:
            # the beacon may be sent again.
            raise StorageUnavailable(type(exc).__name__) from exc
        return str(row_id) if stored else None

    async def write(self, row: list[Any]) -> bool:
        """Write one row of :data:`HIT_INPUT`; True when it is new (stored and enqueued), False
        when it was already there. Returns once committed."""
        pending = _Pending(row, asyncio.get_running_loop().create_future())
        self._submit(pending)
        return await pending.done

    def _take_batch(self) -> list[_Pending]:
        batch: list[_Pending] = []
        while self._pending and len(batch) < MAX_BATCH:
            pending = self._pending.popleft()
            if not pending.done.done():  # the caller went away before it was written
                batch.append(pending)
        return batch

    async def _write(self, batch: list[_Pending]) -> None:
        rows = await self._fetch(_RECORD, batch)
        if rows is None:
            return
        stored = {row["n"] for row in rows}
        for n, pending in enumerate(batch, 1):
            if not pending.done.done():
                pending.done.set_result(n in stored)


def hit_row(hit: BrowserHit, received_at: datetime) -> tuple[uuid.UUID, list[Any]]:
    """A row of :data:`HIT_INPUT` and its id, which is also its message's id (known before the
    statement runs)."""
    row_id = uuid.uuid4()
    message_id = str(row_id)
    tracking = {key: value for key, value in (("src", hit.src), ("sck", hit.sck)) if value}
    return row_id, [
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
            message_type=INGEST_EVENT_TYPE,
            body=hit_event(hit, message_id, received_at).SerializeToString(),
        ),
    ]
