"""What the dispatcher's use cases need from the outside world, and the values they exchange.

Adapters implement these Protocols (PostgreSQL stores, the Meta client, the tenant registry, the
broker's publishers); ``bootstrap`` wires them; unit tests replace them with fakes. Nothing here
does I/O or names a driver.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from trackai_dispatcher.domain.breaker import Breaker
from trackai_dispatcher.domain.classification import MetaAnswer
from trackai_dispatcher.domain.conversion import Conversion
from trackai_dispatcher.domain.model import AttemptOutcome, Destination, State

# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One message of ``capi-dispatch``: the conversion it carries and which copy it is."""

    conversion: Conversion
    #: POSTs recorded for this event when this copy was published (0 for the matcher's own).
    copy: int = 0
    #: The message as received, which the Publisher republishes unchanged (opaque here).
    source: object = field(default=None, compare=False, repr=False)

    @property
    def event_id(self) -> str:
        return self.conversion.event.event_id


@dataclass(frozen=True)
class Credentials:
    #: Decrypted: left out of the repr (log lines, exception messages).
    access_token: str = field(repr=False)
    test_event_code: str | None


@dataclass(frozen=True)
class StatusUpdate:
    """A notification that an event reached a state (the console's live view)."""

    tenant_id: str
    event_id: str
    status: str
    detail: str
    time: datetime


@dataclass(frozen=True)
class NewDispatch:
    """One incoming event, as first stored."""

    event_id: str
    tenant_id: str
    pixel_id: str
    funnel_id: str
    conversion_id: str
    event_name: str
    event_time: int
    payload: Any
    match_stage: str
    match_score: float
    emq: float


@dataclass(frozen=True)
class Current:
    """A stored event's state as a batch sees it under its row lock."""

    event_id: str
    state: State
    attempts: int
    retry_step: int
    claimed: bool


@dataclass(frozen=True)
class Change:
    """A new state for one event at the end of a batch; ``state`` None keeps the current one."""

    event_id: str
    state: State | None
    posts: int = 0
    retry_step: int | None = None
    reason: str | None = None
    detail: str | None = None
    http_status: int | None = None
    code: int | None = None
    subcode: int | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class AttemptRecord:
    batch_id: uuid.UUID
    destination: Destination
    attempt: int
    event_ids: Sequence[str]
    started_at: datetime
    finished_at: datetime
    latency_ms: float
    outcome: AttemptOutcome
    http_status: int | None = None
    meta_code: int | None = None
    meta_subcode: int | None = None
    is_transient: bool | None = None
    fbtrace_id: str | None = None
    events_received: int | None = None
    error_message: str | None = None
    test_event_code: str | None = None


@dataclass(frozen=True)
class Expired:
    """An undelivered event the sweep expired."""

    event_id: str
    tenant_id: str


@dataclass(frozen=True)
class HealthCounts:
    """What the monitoring gauges show: dead events awaiting replay, unclosed breakers."""

    dead: int
    open: int
    half_open: int


@dataclass(frozen=True)
class UnclosedBreaker:
    tenant_id: str
    pixel_id: str
    state: str


@dataclass(frozen=True)
class DeadFilter:
    tenant_id: str | None = None
    reason: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in (
                ("tenant_id", self.tenant_id),
                ("reason", self.reason),
                ("start_time", self.start),
                ("end_time", self.end),
            )
            if value is not None
        }


@dataclass(frozen=True)
class StoredDispatch:
    """A stored event as the DLQ lists and replays it (``payload``: Meta's JSON form)."""

    event_id: str
    tenant_id: str
    pixel_id: str
    funnel_id: str
    conversion_id: str
    event_name: str
    event_time: datetime
    payload: Any
    match_stage: str
    match_score: float
    emq: float
    state: State
    attempts: int
    reason: str | None
    detail: str | None
    last_code: int | None
    last_subcode: int | None
    updated_at: datetime


@dataclass(frozen=True)
class ReplayCounts:
    selected: int
    replayed: int
    skipped_sent: int
    skipped_expired: int


@dataclass(frozen=True)
class AttemptRow:
    """One event's share of one attempt (the API lists one row per event per attempt)."""

    id: int
    batch_id: uuid.UUID
    tenant_id: str
    pixel_id: str
    event_id: str
    started_at: datetime
    latency_ms: float
    outcome: str
    http_status: int | None
    meta_code: int | None
    meta_subcode: int | None
    fbtrace_id: str | None
    error_message: str | None
    attempt_number: int


@dataclass(frozen=True)
class EventStateRow:
    event_id: str
    tenant_id: str
    pixel_id: str
    event_name: str
    state: str
    attempts: int
    reason: str | None
    detail: str | None
    next_attempt_at: datetime | None
    updated_at: datetime | None
    #: Ingestion's conversion id (None for events recorded before the dispatcher kept it).
    conversion_id: str | None = None
    event_time: datetime | None = None


@dataclass(frozen=True)
class StateFilter:
    """A tenant's events in some delivery states (the console's events page by status)."""

    tenant_id: str
    states: tuple[str, ...]
    start: datetime | None = None
    end: datetime | None = None
    funnel_id: str | None = None
    #: Match stages as the matcher's enum names (``MATCH_STAGE_PROBABILISTIC``); empty = all.
    stages: tuple[str, ...] = ()
    #: Keyset: the (event_time, event_id) of the previous page's last row.
    after: tuple[datetime, str] | None = None
    limit: int = 50


@dataclass(frozen=True)
class DestinationHealthRow:
    tenant_id: str
    pixel_id: str
    state: str
    consecutive_failures: int
    opened_at: datetime | None
    probe_after: datetime | None
    last_code: int | None
    last_subcode: int | None
    reason: str | None
    dead_letters: int


# --- ports ------------------------------------------------------------------------------------


class MetaPoster(Protocol):
    async def post_events(
        self,
        pixel_id: str,
        access_token: str,
        events: list[Mapping[str, Any]],
        test_event_code: str | None,
    ) -> MetaAnswer: ...


class DestinationResolver(Protocol):
    async def credentials(
        self, tenant_id: str, funnel_id: str, pixel_id: str
    ) -> Credentials | None:
        """The funnel's credentials for the pixel, None when it has none.

        Raises :class:`RegistryRefused` (for the whole batch), :class:`CredentialUnusable`
        (for this funnel) or any other exception when the registry cannot answer right now.
        """

    def forget(self, tenant_id: str) -> None:
        """Drop what is cached for the tenant (its token was refused)."""


class RegistryRefused(Exception):
    """The registry refused the dispatcher for good (not a transient failure): the message."""


class CredentialUnusable(Exception):
    """The registry cannot open this funnel's credential (it says why): the message."""


class Publisher(Protocol):
    async def delay(self, delivery: Delivery, copy: int, delay_ms: int) -> None:
        """Publish a copy to the delay queue of ``delay_ms`` (confirmed before returning)."""


class Replayer(Protocol):
    async def replay(self, dispatch: StoredDispatch, copy: int) -> None:
        """Publish a stored event back on ``capi-dispatch`` as a new message."""


class Notifier(Protocol):
    async def statuses(self, updates: Sequence[StatusUpdate]) -> None:
        """Publish status updates (notifications: the state itself is in the database)."""


class DeliveryTransaction(Protocol):
    """One database transaction of a batch: its rows stay locked until it ends."""

    async def insert_new(self, items: Sequence[NewDispatch]) -> None: ...
    async def lock_current(self, event_ids: Sequence[str]) -> dict[str, Current]: ...
    async def claim(
        self, event_ids: Sequence[str], batch_id: uuid.UUID, lease_s: float
    ) -> None: ...
    async def apply_changes(self, changes: Sequence[Change]) -> None: ...
    async def record_attempt(self, record: AttemptRecord) -> None: ...
    async def read_breaker(self, destination: Destination) -> Breaker: ...
    async def lock_breaker(self, destination: Destination) -> Breaker: ...
    async def save_breaker(self, destination: Destination, breaker: Breaker) -> None: ...


class DeliveryStore(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[DeliveryTransaction]: ...

    async def read_breaker(self, destination: Destination) -> Breaker:
        """The breaker as last committed, without a lock (closed when it has none)."""


class HealthStore(Protocol):
    """The monitor's round: the expiry sweep and the health figures."""

    async def expire_overdue(self, horizon: datetime, detail: str) -> list[Expired]: ...
    async def failing_destinations(self, window_s: float) -> int: ...
    async def health_counts(self) -> HealthCounts: ...
    async def unclosed_breakers(self) -> list[UnclosedBreaker]: ...


class ReplaySession(Protocol):
    """One connection of a replay; each ``transaction()`` commits a chunk."""

    def transaction(self) -> AbstractAsyncContextManager[None]: ...
    async def lock_one(self, event_id: str) -> StoredDispatch | None: ...
    async def lock_dead_chunk(
        self, where: DeadFilter, before: datetime, limit: int
    ) -> list[StoredDispatch]: ...
    async def start_replay(
        self, requested_by: str, scope: str, where: DeadFilter, note: str
    ) -> tuple[uuid.UUID, datetime]: ...
    async def record_items(self, replay_id: uuid.UUID, outcomes: dict[str, str]) -> None: ...
    async def finish_replay(self, replay_id: uuid.UUID) -> ReplayCounts: ...
    async def requeue_for_replay(self, event_ids: list[str]) -> None: ...
    async def mark_expired(self, event_ids: list[str], detail: str) -> None: ...


class DeadLetterStore(Protocol):
    def session(self) -> AbstractAsyncContextManager[ReplaySession]: ...


class DispatchReader(Protocol):
    """The API's reads of the dispatcher schema."""

    async def list_attempts(
        self,
        tenant_id: str,
        *,
        event_id: str | None,
        batch_id: uuid.UUID | None,
        after: tuple[datetime, int, str] | None,
        limit: int,
    ) -> list[AttemptRow]: ...
    async def event_state(self, tenant_id: str, event_id: str) -> EventStateRow | None: ...
    async def event_states(self, tenant_id: str, event_ids: list[str]) -> list[EventStateRow]: ...
    async def list_states(self, where: StateFilter) -> list[EventStateRow]: ...
    async def list_dead(
        self, where: DeadFilter, after: tuple[datetime, str] | None, limit: int
    ) -> list[StoredDispatch]: ...
    async def destination_health(self, tenant_id: str | None) -> list[DestinationHealthRow]: ...
    async def parameter_coverage(
        self, tenant_id: str, start: datetime, end: datetime
    ) -> tuple[int, dict[str, int]]: ...
