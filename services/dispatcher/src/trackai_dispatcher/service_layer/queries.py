"""The API's questions about deliveries: attempts, event states, dead letters (and whether each
can still be replayed), destination health and parameter coverage; pages bounded here."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from trackai_dispatcher.domain.model import is_expired
from trackai_dispatcher.service_layer.ports import (
    AttemptRow,
    DeadFilter,
    DestinationHealthRow,
    DispatchReader,
    EventStateRow,
    StateFilter,
    StoredDispatch,
)

PAGE_DEFAULT = 50
PAGE_MAX = 500


def page_size(requested: int) -> int:
    return PAGE_DEFAULT if requested <= 0 else min(requested, PAGE_MAX)


class Queries:
    def __init__(
        self, reader: DispatchReader, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._reader = reader
        self._clock = clock

    async def attempts(
        self,
        tenant_id: str,
        *,
        event_id: str | None,
        batch_id: uuid.UUID | None,
        after: tuple[datetime, int, str] | None,
        limit: int,
    ) -> list[AttemptRow]:
        return await self._reader.list_attempts(
            tenant_id, event_id=event_id, batch_id=batch_id, after=after, limit=limit
        )

    async def event_state(self, tenant_id: str, event_id: str) -> EventStateRow | None:
        return await self._reader.event_state(tenant_id, event_id)

    async def event_states(self, tenant_id: str, event_ids: list[str]) -> list[EventStateRow]:
        if not event_ids:
            return []
        return await self._reader.event_states(tenant_id, event_ids)

    async def list_states(self, where: StateFilter) -> list[EventStateRow]:
        """Newest event time first; ``where.limit`` rows at most."""
        if not where.states:
            raise ValueError("states: give at least one state")
        if where.start and where.end and where.start >= where.end:
            raise ValueError("start_time must be before end_time")
        return await self._reader.list_states(where)

    async def dead_letters(
        self, where: DeadFilter, after: tuple[datetime, str] | None, limit: int
    ) -> list[tuple[StoredDispatch, bool]]:
        """Dead events newest first, each with whether a replay would still send it."""
        rows = await self._reader.list_dead(where, after, limit)
        now = self._clock().timestamp()
        return [(row, not is_expired(int(row.event_time.timestamp()), now)) for row in rows]

    async def destination_health(self, tenant_id: str | None) -> list[DestinationHealthRow]:
        return await self._reader.destination_health(tenant_id)

    async def parameter_coverage(
        self, tenant_id: str, start: datetime, end: datetime
    ) -> tuple[int, dict[str, int]]:
        return await self._reader.parameter_coverage(tenant_id, start, end)
