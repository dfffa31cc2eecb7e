"""Live status for open pages: updates from ``trackai.status`` fanned out per tenant to the
browsers of that tenant only, with a per-tenant history so a reconnecting browser resumes after
the last id it saw (``Last-Event-ID``).

The history is shared by every console replica (``StatusHistory``, a Redis stream per tenant):
each replica consumes every update, the first to reach the history keeps it and every replica
sends it under that same id, so a browser cut from one replica resumes on another. When the
shared history cannot be reached the hub degrades to live-only with a process-local history
(ids of the form ``<epoch>-<sequence>``, which only this process resumes), and logs it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from trackai_console.service_layer.ports import HistoryUnavailable, StatusHistory
from trackai_kit.logging import get_logger

HISTORY_PER_TENANT = 500
SUBSCRIBER_BUFFER = 1000
#: Seconds the hub stays live-only after the shared history failed, before trying it again (so
#: an unreachable Redis costs one timeout per period, not one per update).
SHARED_RETRY_S = 5.0
log = get_logger(__name__)


@dataclass(frozen=True)
class LiveUpdate:
    """One status change as a browser receives it (no personal data: ids and states only)."""

    id: str
    tenant_id: str
    entity: str
    entity_id: str
    status: str
    detail: str
    stage: str = ""
    score: float = 0.0

    def fields(self) -> dict[str, str]:
        return {
            "entity": self.entity,
            "entity_id": self.entity_id,
            "status": self.status,
            "detail": self.detail,
            "stage": self.stage,
            "score": repr(self.score),
        }

    @classmethod
    def from_fields(cls, update_id: str, tenant_id: str, fields: dict[str, str]) -> LiveUpdate:
        try:
            score = float(fields.get("score", "0") or 0)
        except ValueError:
            score = 0.0
        return cls(
            update_id,
            tenant_id,
            fields.get("entity", ""),
            fields.get("entity_id", ""),
            fields.get("status", ""),
            fields.get("detail", ""),
            fields.get("stage", ""),
            score,
        )


class StatusHub:
    """Per-tenant fan-out to this process's browsers, over the shared history when there is
    one. Local ids are ``<epoch>-<sequence>``: the epoch changes when the process restarts, so
    an id from a previous process resumes nothing (the page re-reads instead)."""

    def __init__(
        self, history: int = HISTORY_PER_TENANT, shared: StatusHistory | None = None
    ) -> None:
        self._epoch = secrets.token_hex(4)
        self._sequence = itertools.count(1)
        self._history_size = history
        self._history: dict[str, deque[tuple[int, LiveUpdate]]] = {}
        self._subscribers: dict[str, set[asyncio.Queue[LiveUpdate | None]]] = {}
        self._shared = shared
        self._degraded = False
        self._retry_at = 0.0
        # One update at a time: the history gives ids in the order the feed received them.
        self._publishing = asyncio.Lock()

    def _shared_usable(self) -> bool:
        return self._shared is not None and time.monotonic() >= self._retry_at

    def _shared_failed(self, action: str, exc: HistoryUnavailable) -> None:
        self._retry_at = time.monotonic() + SHARED_RETRY_S
        if not self._degraded:
            log.warning(
                "live history unavailable: updates are live-only until it is back",
                action=action,
                error=str(exc),
            )
        self._degraded = True

    def _shared_ok(self) -> None:
        if self._degraded:
            log.info("live history reachable again: updates resume across replicas")
        self._degraded = False

    async def _keep(self, tenant_id: str, key: str, update: LiveUpdate) -> str | None:
        """The update's id in the shared history (None without one, or when it is away)."""
        if self._shared is None or not self._shared_usable():
            return None
        try:
            update_id = await self._shared.append(tenant_id, key, update.fields())
        except HistoryUnavailable as exc:
            self._shared_failed("append", exc)
            return None
        self._shared_ok()
        return update_id

    async def publish(
        self,
        tenant_id: str,
        *,
        entity: str,
        entity_id: str,
        status: str,
        detail: str,
        stage: str = "",
        score: float = 0.0,
        key: str = "",
    ) -> None:
        update = LiveUpdate("", tenant_id, entity, entity_id, status, detail, stage, score)
        async with self._publishing:
            self._fan_out(tenant_id, await self._number(tenant_id, key, update))

    async def _number(self, tenant_id: str, key: str, update: LiveUpdate) -> LiveUpdate:
        """The update under its id: the shared history's, else a local one (kept locally)."""
        shared_id = await self._keep(tenant_id, key or secrets.token_hex(16), update)
        if shared_id is not None:
            update = LiveUpdate.from_fields(shared_id, tenant_id, update.fields())
        else:
            sequence = next(self._sequence)
            update = LiveUpdate.from_fields(f"{self._epoch}-{sequence}", tenant_id, update.fields())
            history = self._history.setdefault(tenant_id, deque(maxlen=self._history_size))
            history.append((sequence, update))
        return update

    def _fan_out(self, tenant_id: str, update: LiveUpdate) -> None:
        for queue in list(self._subscribers.get(tenant_id, ())):
            try:
                queue.put_nowait(update)
            except asyncio.QueueFull:
                # A browser that stopped reading: end its stream; it reconnects and resumes.
                self._subscribers[tenant_id].discard(queue)
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(None)

    async def _backlog(self, tenant_id: str, last_event_id: str) -> list[LiveUpdate]:
        if self._shared is not None and self._shared.is_id(last_event_id):
            if not self._shared_usable():
                return []
            try:
                kept = await self._shared.after(tenant_id, last_event_id)
            except HistoryUnavailable as exc:
                self._shared_failed("resume", exc)
                return []
            self._shared_ok()
            return [LiveUpdate.from_fields(i, tenant_id, fields) for i, fields in kept]
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
            # Listening before reading the history: an update arriving meanwhile is in both,
            # and is sent once.
            sent: set[str] = set()
            for update in await self._backlog(tenant_id, last_event_id):
                sent.add(update.id)
                yield update
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), heartbeat_s)
                except TimeoutError:
                    yield None
                    continue
                if item is None:
                    return
                if item.id in sent:
                    continue
                yield item
        finally:
            self._subscribers.get(tenant_id, set()).discard(queue)
