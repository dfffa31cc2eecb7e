"""In-memory fakes of the dispatcher's ports that speak its value types (the service-agnostic
ones, clock and recorder, come from ``trackai_testing.fakes``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from trackai_dispatcher.domain.breaker import Breaker
from trackai_dispatcher.domain.classification import MetaAnswer
from trackai_dispatcher.domain.conversion import Conversion, CustomData, ServerEvent, UserData
from trackai_dispatcher.domain.model import Destination, State
from trackai_dispatcher.service_layer.ports import (
    AttemptRecord,
    Change,
    Credentials,
    Current,
    DeadFilter,
    Delivery,
    NewDispatch,
    ReplayCounts,
    StoredDispatch,
)

TENANT = "6f1c2d4e-0000-4000-8000-000000000001"
PIXEL = "1234567890"
DESTINATION = Destination(TENANT, PIXEL)
DIGEST = "a" * 64


def conversion(event_id: str, event_time: int, *, funnel: str = "f1", **event: Any) -> Conversion:
    """A purchase Meta would accept (``event`` overrides ServerEvent fields)."""
    fields: dict[str, Any] = {
        "event_name": "Purchase",
        "event_time": event_time,
        "action_source": "system_generated",
        "user_data": UserData(hashed={"em": (DIGEST,)}),
        "custom_data": CustomData("10.00", "BRL"),
        **event,
    }
    return Conversion(
        tenant_id=TENANT,
        pixel_id=PIXEL,
        funnel_id=funnel,
        conversion_id="c-" + event_id,
        event=ServerEvent(event_id=event_id, **fields),
        payload={"event_id": event_id, "event_name": fields["event_name"]},
    )


def delivery(event_id: str, event_time: int, copy: int = 0, **event: Any) -> Delivery:
    return Delivery(conversion(event_id, event_time, **event), copy)


@dataclass
class Row:
    state: State = State.PENDING
    attempts: int = 0
    retry_step: int = 0
    claimed: bool = False
    reason: str | None = None
    detail: str | None = None


@dataclass
class MemoryDeliveryStore:
    """The DeliveryStore over dicts: one transaction at a time, nothing to roll back."""

    rows: dict[str, Row] = field(default_factory=dict)
    breaker: Breaker = field(default_factory=Breaker)
    attempts: list[AttemptRecord] = field(default_factory=list)
    inserted: list[NewDispatch] = field(default_factory=list)
    transactions: int = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MemoryDeliveryStore]:
        self.transactions += 1
        yield self

    async def insert_new(self, items: Sequence[NewDispatch]) -> None:
        for item in items:
            if item.event_id not in self.rows:
                self.rows[item.event_id] = Row()
                self.inserted.append(item)

    async def lock_current(self, event_ids: Sequence[str]) -> dict[str, Current]:
        return {
            e: Current(e, r.state, r.attempts, r.retry_step, r.claimed)
            for e in event_ids
            if (r := self.rows.get(e)) is not None
        }

    async def claim(self, event_ids: Sequence[str], batch_id: uuid.UUID, lease_s: float) -> None:
        for event_id in event_ids:
            self.rows[event_id].claimed = True

    async def apply_changes(self, changes: Sequence[Change]) -> None:
        for change in changes:
            row = self.rows[change.event_id]
            row.attempts += change.posts
            row.claimed = False
            if change.state is not None:
                row.state, row.reason, row.detail = change.state, change.reason, change.detail
            if change.retry_step is not None:
                row.retry_step = change.retry_step

    async def record_attempt(self, record: AttemptRecord) -> None:
        self.attempts.append(record)

    async def read_breaker(self, destination: Destination) -> Breaker:
        return self.breaker

    async def lock_breaker(self, destination: Destination) -> Breaker:
        return self.breaker

    async def save_breaker(self, destination: Destination, breaker: Breaker) -> None:
        self.breaker = breaker


class FakeMeta:
    """Meta's CAPI: refuses a request holding any event id in ``bad`` (code 100), answers
    ``down`` (a 503) when set, accepts otherwise. Keeps each request's event ids."""

    def __init__(self, bad: set[str] = frozenset(), down: bool = False) -> None:  # type: ignore[assignment]
        self.bad = set(bad)
        self.down = down
        self.requests: list[list[str]] = []

    async def post_events(
        self, pixel_id: str, access_token: str, events: list[Any], test_event_code: str | None
    ) -> MetaAnswer:
        ids = [e["event_id"] for e in events]
        self.requests.append(ids)
        if self.down:
            return MetaAnswer(http_status=503, latency_ms=5.0, body={"error": {"code": 2}})
        if self.bad & set(ids):
            body = {"error": {"code": 100, "message": "Invalid parameter"}}
            return MetaAnswer(http_status=400, latency_ms=5.0, body=body)
        return MetaAnswer(http_status=200, latency_ms=5.0, body={"events_received": len(ids)})


class FakeDestinations:
    """Credentials by funnel; ``error`` raised for every funnel when set."""

    def __init__(
        self, by_funnel: dict[str, Credentials | None], error: Exception | None = None
    ) -> None:
        self.by_funnel = by_funnel
        self.error = error
        self.forgotten: list[str] = []

    async def credentials(
        self, tenant_id: str, funnel_id: str, pixel_id: str
    ) -> Credentials | None:
        if self.error is not None:
            raise self.error
        return self.by_funnel.get(funnel_id)

    def forget(self, tenant_id: str) -> None:
        self.forgotten.append(tenant_id)


def stored(event_id: str, state: State, event_time: datetime, attempts: int = 1) -> StoredDispatch:
    return StoredDispatch(
        event_id=event_id, tenant_id=TENANT, pixel_id=PIXEL, funnel_id="f1",
        conversion_id="", event_name="Purchase", event_time=event_time, payload={},
        match_stage="", match_score=0.0, emq=0.0, state=state, attempts=attempts,
        reason="meta_rejected", detail=None, last_code=None, last_subcode=None,
        updated_at=event_time,
    )  # fmt: skip


@dataclass
class MemoryReplaySession:
    """The ReplaySession over a list of stored events (the DLQ) and the replay's counters."""

    rows: dict[str, StoredDispatch]
    items: dict[str, str] = field(default_factory=dict)
    requeued: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    replays: list[tuple[str, DeadFilter]] = field(default_factory=list)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[MemoryReplaySession]:
        yield self

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield

    async def lock_one(self, event_id: str) -> StoredDispatch | None:
        return self.rows.get(event_id)

    async def lock_dead_chunk(
        self, where: DeadFilter, before: datetime, limit: int
    ) -> list[StoredDispatch]:
        dead = [r for r in self.rows.values() if r.state is State.DEAD]
        return sorted(dead, key=lambda r: r.event_id)[:limit]

    async def start_replay(
        self, requested_by: str, scope: str, where: DeadFilter, note: str
    ) -> tuple[uuid.UUID, datetime]:
        self.replays.append((scope, where))
        return uuid.uuid4(), datetime.now().astimezone()

    async def record_items(self, replay_id: uuid.UUID, outcomes: dict[str, str]) -> None:
        self.items.update(outcomes)

    async def finish_replay(self, replay_id: uuid.UUID) -> ReplayCounts:
        values = list(self.items.values())
        return ReplayCounts(
            len(values),
            values.count("replayed"),
            values.count("skipped_sent"),
            values.count("skipped_expired"),
        )

    async def requeue_for_replay(self, event_ids: list[str]) -> None:
        self.requeued.extend(event_ids)
        for event_id in event_ids:
            self.rows[event_id] = replace(self.rows[event_id], state=State.PENDING)

    async def mark_expired(self, event_ids: list[str], detail: str) -> None:
        self.expired.extend(event_ids)
        for event_id in event_ids:
            self.rows[event_id] = replace(self.rows[event_id], state=State.EXPIRED)
