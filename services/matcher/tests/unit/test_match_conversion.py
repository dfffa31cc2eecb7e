"""The consumer's use case with an in-memory store: what one conversion message leads to, and that
an event registered before is never enqueued again. No database."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from trackai_matcher.domain.model import MatchDecision, Purchase, Stage, Tracking
from trackai_matcher.domain.tenants import Destination, TenantSetup
from trackai_matcher.service_layer.ingest import MatchConversion, MatcherConfig, Outcome
from trackai_matcher.service_layer.ports import Registration, StoredMatch
from trackai_matcher.telemetry import MatcherMetrics

T = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


class Conn:
    """Sees the outbox statement the use case runs on the message's connection."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    async def execute(self, sql: str, *args: Any) -> str:
        self.statements.append(sql)
        return "INSERT 0 1"


@dataclass
class Store:
    conn: Conn = field(default_factory=Conn)
    claimed: bool = True
    match: StoredMatch | None = None
    #: False: the (tenant, gateway, order, event) was registered by an earlier message.
    new_event: bool = True
    registrations: list[Registration] = field(default_factory=list)
    logged: list[str] = field(default_factory=list)

    @contextlib.asynccontextmanager
    async def transaction(self, pool: object) -> AsyncIterator[Conn]:
        yield self.conn

    async def claim_and_find_match(
        self, conn: Conn, message_id: str, purchase: Purchase
    ) -> tuple[bool, StoredMatch | None]:
        return self.claimed, self.match

    async def save_match(
        self, conn: Conn, purchase: Purchase, decision: MatchDecision, at: dt.datetime
    ) -> StoredMatch:
        self.match = StoredMatch(7, decision.stage, decision.method, None, None, at)
        return self.match

    async def register_event(
        self, conn: Conn, purchase: Purchase, message_id: str, registration: Registration
    ) -> bool:
        self.registrations.append(registration)
        return self.new_event

    async def log_conversion(
        self, conn: Conn, purchase: Purchase, message_id: str, **kw: Any
    ) -> None:
        self.logged.append(kw["disposition"])


class Unmatched:
    async def decide(
        self,
        conn: Conn,
        purchase: Purchase,
        at: dt.datetime,
        lookback: Any,
        *,
        deterministic_only: bool = False,
    ) -> MatchDecision:
        return MatchDecision(Stage.NONE, None, None)


@dataclass
class Directory:
    destination: Destination | None = field(default_factory=lambda: Destination("1234567890"))

    async def setup(self, tenant_id: str) -> TenantSetup:
        return TenantSetup(tenant_id, self.destination)


def purchase(status: str = "approved") -> Purchase:
    return Purchase(
        tenant_id="0b7c1f9e-3a52-4e0c-9a7d-1d2f3e4a5b6c", gateway="hotmart", order_id="o1", conversion_id=None, status=status,
        payment_method="credit_card", event_time=T, amount="97.00", currency="BRL",
        product_id="p1", funnel_id=None, tracking=Tracking(), client_ip=None, user_agent="",
        hashed={"em": "a" * 64},
    )  # fmt: skip


def use_case(store: Store, directory: Directory | None = None) -> MatchConversion:
    return MatchConversion(
        None,  # type: ignore[arg-type]  # the fake store opens the transactions
        store=store,  # type: ignore[arg-type]
        directory=directory or Directory(),
        engine=Unmatched(),  # type: ignore[arg-type]
        config=MatcherConfig(),
        metrics=MatcherMetrics(),
        clock=lambda: T,
    )


def outbox_writes(store: Store) -> int:
    return sum("outbox" in sql for sql in store.conn.statements)


async def test_a_sale_is_registered_and_enqueued_once() -> None:
    store = Store()
    result = await use_case(store).handle_conversion("m1", purchase())
    assert result.outcome is Outcome.QUEUED and result.stage is Stage.NONE
    (registration,) = store.registrations
    assert registration.event_name == "Purchase" and registration.pixel_id == "1234567890"
    assert registration.event_id == result.event_id
    assert outbox_writes(store) == 1


async def test_an_event_registered_before_is_not_enqueued_again() -> None:
    store = Store(new_event=False)
    result = await use_case(store).handle_conversion("m2", purchase())
    assert result.outcome is Outcome.DUPLICATE
    assert outbox_writes(store) == 0


async def test_a_redelivered_message_changes_nothing() -> None:
    store = Store(claimed=False)
    result = await use_case(store).handle_conversion("m1", purchase())
    assert result.outcome is Outcome.REDELIVERY
    assert store.registrations == [] and store.logged == [] and outbox_writes(store) == 0


async def test_a_tenant_without_a_pixel_records_the_event_without_sending_it() -> None:
    store = Store()
    result = await use_case(store, Directory(destination=None)).handle_conversion("m1", purchase())
    assert result.outcome is Outcome.NO_DESTINATION
    assert store.registrations[0].reason and outbox_writes(store) == 0


async def test_a_status_without_an_event_is_logged_not_dispatched() -> None:
    store = Store()
    result = await use_case(store).handle_conversion("m1", purchase(status="abandoned"))
    assert result.outcome is Outcome.NOT_DISPATCHED
    assert store.logged == ["not_dispatched"] and store.registrations == []
