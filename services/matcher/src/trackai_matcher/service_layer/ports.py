"""What the matcher's consumer use cases need from the outside: the tenant directory, the store
they fold hits, find candidates and record matches in (``adapters.repository``, a module of
statements on one connection, satisfies MatchStore and CandidateStore), with the store's value
types. Bootstrap wires the adapters in.
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
