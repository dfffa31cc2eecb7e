"""What the matcher's use cases need from the outside: the tenant directory, the store the
consumer folds hits, finds candidates and records matches in (``adapters.repository``, a module of
statements on one connection, satisfies MatchStore and CandidateStore), the reports MatcherService
reads (``adapters.reports``), with their value types. Bootstrap wires the adapters in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from trackai_matcher.domain.model import Click, Hit, MatchDecision, Purchase, Stage
from trackai_matcher.domain.scoring import ValueCounts
from trackai_matcher.domain.tenants import TenantSetup
from trackai_matcher.domain.useragent import UaTraits

#: The store's connection: use cases hold one per message, so its effects commit together.
Connection = asyncpg.Connection


@dataclass(frozen=True)
class SessionIdentity:
    email_hash: str | None
    phone_hash: str | None
    external_id: str | None


@dataclass(frozen=True)
class StoredMatch:
    id: int
    stage: Stage
    method: str | None
    click: Click | None
    score: float | None
    purchase_time: dt.datetime
    #: Identities seen on the matched session (up to ``IDENTITIES_LIMIT``, most recent first).
    identities: list[SessionIdentity] = field(default_factory=list)


@dataclass(frozen=True)
class Registration:
    event_id: str
    event_name: str
    source_status: str
    match_id: int
    stage: Stage
    emq: float
    low_emq: bool
    event_time: dt.datetime
    funnel_id: str | None
    pixel_id: str | None
    outcome: str
    #: Why the event will not be sent (``conversion_log.reason`` when it is registered).
    reason: str | None = None
    #: The match's score (probabilistic matches), for the "matched" status update.
    score: float | None = None


@dataclass(frozen=True)
class ProbabilisticCandidates:
    clicks: list[Click]
    counts: ValueCounts
    purchase_network: str | None


class TenantDirectory(Protocol):
    """A tenant's set-up (destinations, funnels); raises ``TenantConfigUnavailable`` when the
    registry cannot answer and nothing is cached."""

    async def setup(self, tenant_id: str) -> TenantSetup: ...


class MatchStore(Protocol):
    """The statements of one ``ingest-events`` message, each on the message's connection."""

    def transaction(self, pool: asyncpg.Pool) -> AbstractAsyncContextManager[Connection]: ...

    async def claim_message(self, conn: Connection, message_id: str, message_type: str) -> bool: ...

    async def upsert_click(self, conn: Connection, hit: Hit, traits: UaTraits) -> None: ...

    async def upsert_identity(self, conn: Connection, hit: Hit, source: str) -> None: ...

    async def claim_and_find_match(
        self, conn: Connection, message_id: str, purchase: Purchase
    ) -> tuple[bool, StoredMatch | None]: ...

    async def save_match(
        self, conn: Connection, purchase: Purchase, decision: MatchDecision, at: dt.datetime
    ) -> StoredMatch: ...

    async def upgrade_unmatched(
        self, conn: Connection, match_id: int, decision: MatchDecision
    ) -> bool: ...

    async def session_identities(
        self, conn: Connection, tenant_id: str, session_id: str
    ) -> list[SessionIdentity]: ...

    async def register_event(
        self, conn: Connection, purchase: Purchase, message_id: str, registration: Registration
    ) -> bool: ...

    async def log_conversion(
        self,
        conn: Connection,
        purchase: Purchase,
        message_id: str,
        *,
        event_name: str | None,
        event_id: str | None,
        disposition: str,
        reason: str | None,
    ) -> None: ...


class Row(Protocol):
    """A sampled session's traits, read by column name."""

    def __getitem__(self, key: str) -> Any: ...


class CandidateStore(Protocol):
    """The sessions a purchase may match, per stage, and the tenant's traffic sample."""

    async def exact_candidates(
        self, conn: Connection, purchase: Purchase, at: dt.datetime, lookback: dt.timedelta
    ) -> list[tuple[str, Click]]: ...

    async def probabilistic_candidates(
        self,
        conn: Connection,
        tenant_id: str,
        *,
        client_ip: str | None,
        user_agent: str | None,
        at: dt.datetime,
        window: dt.timedelta,
    ) -> ProbabilisticCandidates: ...

    async def tenant_sample(self, conn: Connection, tenant_id: str, size: int) -> Sequence[Row]: ...


@dataclass(frozen=True)
class SummaryRow:
    """One registered event with its order's match, as MatcherService reports it."""

    conversion_id: str | None
    order_id: str
    gateway: str
    event_id: str
    event_name: str
    stage: Stage
    session_id: str | None
    click_id: int | None
    score: float | None
    runner_up_score: float | None
    emq: float | None
    event_time: dt.datetime
    matched_at: dt.datetime | None
    evidence: dict[str, Any]

    @property
    def margin(self) -> float | None:
        if self.score is None or self.runner_up_score is None:
            return None
        return self.score - self.runner_up_score


@dataclass(frozen=True)
class PageFilter:
    tenant_id: str
    start: dt.datetime | None
    end: dt.datetime | None
    stages: Sequence[Stage]
    #: Review lists: probabilistic matches only when their margin is below this (None = all).
    max_margin: float | None
    after: tuple[dt.datetime, str] | None
    limit: int
    gateway: str | None = None
    #: The event's funnel (the sale's, else its click's), as a UUID string.
    funnel_id: str | None = None


@dataclass(frozen=True)
class DayStats:
    day: dt.date
    conversions: int
    deterministic: int
    semi: int
    probabilistic: int
    unmatched: int
    emq_average: float
    low_emq_events: int


class MatchReports(Protocol):
    """The read side of MatcherService: match summaries, one explanation, per-day statistics.
    Arguments arrive validated (tenant and conversion ids are canonical UUIDs)."""

    async def list_summaries(self, f: PageFilter) -> list[SummaryRow]:
        """Newest conversion first, keyset-paged on (event_time, event_id), at most ``f.limit``."""
        ...

    async def by_event_id(self, tenant_id: str, event_id: str) -> SummaryRow | None: ...

    async def by_conversion_id(self, tenant_id: str, conversion_id: str) -> SummaryRow | None: ...

    async def by_conversion_ids(
        self, tenant_id: str, conversion_ids: Sequence[str]
    ) -> list[tuple[str, SummaryRow]]:
        """(requested id, row) for each conversion that has a registered event."""
        ...

    async def daily_stats(
        self, tenant_id: str, first: dt.date, last: dt.date
    ) -> dict[dt.date, DayStats]:
        """The days of ``first..last`` that have statistics (days without any are absent)."""
        ...
