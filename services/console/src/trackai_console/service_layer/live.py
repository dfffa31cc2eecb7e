"""Live status for open pages: updates from ``trackai.status`` fanned out per tenant to the
browsers of that tenant only, with a short per-tenant history so a reconnecting browser
resumes after the last id it saw (``Last-Event-ID``)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

HISTORY_PER_TENANT = 500
SUBSCRIBER_BUFFER = 1000


@dataclass(frozen=True)
class LiveUpdate:
    """One status change as a browser receives it (no personal data: ids and states only)."""

    id: str
    tenant_id: str
    entity: str
    entity_id: str
    status: str
    detail: str


class StatusHub:
    """In-process fan-out. Ids are ``<epoch>-<sequence>``: the epoch changes when the process
    restarts, so an id from a previous process resumes nothing (the page refreshes instead)."""

    def __init__(self, history: int = HISTORY_PER_TENANT) -> None:
        self._epoch = secrets.token_hex(4)
        self._sequence = itertools.count(1)
        self._history_size = history
        self._history: dict[str, deque[tuple[int, LiveUpdate]]] = {}
        self._subscribers: dict[str, set[asyncio.Queue[LiveUpdate | None]]] = {}

    def publish(
        self, tenant_id: str, *, entity: str, entity_id: str, status: str, detail: str
    ) -> None:
        sequence = next(self._sequence)
        update = LiveUpdate(
            f"{self._epoch}-{sequence}", tenant_id, entity, entity_id, status, detail
        )
        history = self._history.setdefault(tenant_id, deque(maxlen=self._history_size))
        history.append((sequence, update))
        for queue in list(self._subscribers.get(tenant_id, ())):
            try:
                queue.put_nowait(update)
            except asyncio.QueueFull:
                # A browser that stopped reading: end its stream; it reconnects and resumes.
                self._subscribers[tenant_id].discard(queue)
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(None)

    def _backlog(self, tenant_id: str, last_event_id: str) -> list[LiveUpdate]:
        epoch, _, number = last_event_id.partition("-")
        if epoch != self._epoch or not number.isdigit():
            return []
        after = int(number)
        return [u for seq, u in self._history.get(tenant_id, ()) if seq > after]

    def subscriber_count(self, tenant_id: str) -> int:
        return len(self._subscribers.get(tenant_id, ()))

    async def subscribe(
        self, tenant_id: str, last_event_id: str = "", heartbeat_s: float = 15.0
    ) -> AsyncIterator[LiveUpdate | None]:
        """The tenant's updates after ``last_event_id``, then live ones; None is a heartbeat."""
        queue: asyncio.Queue[LiveUpdate | None] = asyncio.Queue(SUBSCRIBER_BUFFER)
        self._subscribers.setdefault(tenant_id, set()).add(queue)
        try:
            for update in self._backlog(tenant_id, last_event_id):
                yield update
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), heartbeat_s)
                except TimeoutError:
                    yield None
                    continue
                if item is None:
                    return
                yield item
        finally:
            self._subscribers.get(tenant_id, set()).discard(queue)
