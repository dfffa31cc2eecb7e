"""Use cases of the ``ingest-events`` consumer: fold hits into sessions, match and register
conversions, and enqueue the Meta event, each message in one transaction.

A message id is claimed in ``inbox`` in the same transaction as its effects, so a redelivery
changes nothing; ``dedupe_registry`` makes one event per (tenant, gateway, order, event name) hold
across different messages and concurrent consumers; the outbox row to ``capi-dispatch`` is written
only by the transaction that registered the event.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import asyncpg

from trackai.matcher.v1 import events_pb2 as pb
from trackai_kit import outbox
from trackai_kit.identity import event_id as compute_event_id
from trackai_kit.logging import bind_context, get_logger
from trackai_kit.topology import CAPI_DISPATCH
from trackai_matcher.domain.emq import EmqEstimate
from trackai_matcher.domain.model import Hit, HitKind, Purchase, Stage
from trackai_matcher.domain.policy import SALE_STATUSES, StatusPolicy
from trackai_matcher.domain.tenants import TenantSetup
from trackai_matcher.domain.useragent import parse_user_agent
from trackai_matcher.service_layer.events import build_dispatch
from trackai_matcher.service_layer.matching import MatchEngine
from trackai_matcher.service_layer.ports import (
    Connection,
    MatchStore,
    Registration,
    StoredMatch,
    TenantDirectory,
)
from trackai_matcher.telemetry import MatcherMetrics

SCHEMA = "matcher"
DISPATCH_TYPE = pb.DispatchRequest.DESCRIPTOR.full_name
#: How many times a sale naming a script session the matcher has not stored waits for that
#: session's hit (through the consumer's delay queues: 1 s, then 5 s) before it is matched
#: without it. The hit and the sale travel on one queue, but consumers handle several messages
#: at once, so a sale can be handled while its session's hit is still in flight.
SESSION_WAITS = 2
log = get_logger(__name__)


class SessionNotSeenYet(Exception):
    """The sale names a session of our script that is not stored yet: try it again shortly
    (nothing of this try is committed)."""


class Outcome(StrEnum):
    """What one conversion message led to (``conversion_log.disposition``, plus redelivery)."""

    QUEUED = "queued"
    DUPLICATE = "duplicate"
    NOT_DISPATCHED = "not_dispatched"
    NO_DESTINATION = "no_destination"
    REDELIVERY = "redelivery"


@dataclass(frozen=True)
class MatcherConfig:
    default_lookback: dt.timedelta = dt.timedelta(days=30)
    policy: StatusPolicy = field(default_factory=StatusPolicy)


@dataclass(frozen=True)
class ConversionResult:
    outcome: Outcome
    stage: Stage | None = None
    event_id: str | None = None
    emq: EmqEstimate | None = None


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _session_in_flight(purchase: Purchase, match: StoredMatch) -> bool:
    """The sale names a session of our script and was not matched to it (nor to another session
    with certainty): that session's hit may still be on its way."""
    return match.stage is not Stage.DETERMINISTIC and bool(purchase.script_sessions())


class MatchConversion:
    """Folds browser hits into sessions, and matches each conversion to one, registers its
    Meta event once and enqueues it for the dispatcher."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        store: MatchStore,
        directory: TenantDirectory,
        engine: MatchEngine,
        config: MatcherConfig,
        metrics: MatcherMetrics,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self._pool = pool
        self._store = store
        self._directory = directory
        self._engine = engine
        self._config = config
        self._metrics = metrics
        self._clock = clock

    async def handle_hit(self, message_id: str, hit: Hit) -> bool:
        """Fold a browser hit into its session; False for a redelivered message."""
        async with self._store.transaction(self._pool) as conn:
            if not await self._store.claim_message(conn, message_id, "hit"):
                return False
            await self._store.upsert_click(conn, hit, parse_user_agent(hit.user_agent))
            if hit.email_hash or hit.phone_hash:
                source = "checkout_start" if hit.kind is HitKind.INITIATE_CHECKOUT else "lead"
                await self._store.upsert_identity(conn, hit, source)
        self._metrics.hits.add(1, {"hit_type": hit.kind.value})
        return True

    async def handle_conversion(
        self, message_id: str, purchase: Purchase, *, waited: int = SESSION_WAITS
    ) -> ConversionResult:
        """Match the order (once), map its status to an event, register and enqueue it.

        ``waited`` is how many times this message was already tried again; while it is below
        :data:`SESSION_WAITS`, a sale whose script session is not stored yet raises
        :class:`SessionNotSeenYet` instead of being matched without it."""
        # Read before the transaction: a registry call must not hold row locks.
        setup = await self._directory.setup(purchase.tenant_id)
        lookback = setup.lookback(purchase.funnel_id, self._config.default_lookback)
        async with self._store.transaction(self._pool) as conn:
            claimed, match = await self._store.claim_and_find_match(conn, message_id, purchase)
            if not claimed:
                return ConversionResult(Outcome.REDELIVERY)
            if purchase.status in SALE_STATUSES:
                decided = match is not None and match.stage is not Stage.NONE
                # Only the deterministic stage counts while the sale may still wait for its
                # session: the others' answer would be rolled back with the wait.
                may_wait = not decided and waited < SESSION_WAITS and purchase.script_sessions()
                match = await self._decide(
                    conn, purchase, match, lookback, deterministic_only=bool(may_wait)
                )
                if may_wait and _session_in_flight(purchase, match):
                    raise SessionNotSeenYet(
                        f"sale {purchase.order_id} names a session not stored yet"
                    )
            # The status mapping is the funnel's: the conversion's own, else its session's.
            click = match.click if match is not None else None
            funnel_id = purchase.funnel_id or (click.funnel_id if click else None)
            policy = setup.policy(funnel_id, self._config.policy)
            event_name, reason = policy.event_for(purchase.status, purchase.payment_method)
            if event_name is None or match is None:
                await self._store.log_conversion(
                    conn,
                    purchase,
                    message_id,
                    event_name=None,
                    event_id=None,
                    disposition=Outcome.NOT_DISPATCHED.value,
                    reason=reason,
                )
                result = ConversionResult(Outcome.NOT_DISPATCHED, match.stage if match else None)
            else:
                result = await self._register(
                    conn,
                    message_id=message_id,
                    purchase=purchase,
                    match=match,
                    event_name=event_name,
                    setup=setup,
                )
        self._after_commit(purchase, result, reason)
        return result

    async def _decide(
        self,
        conn: Connection,
        purchase: Purchase,
        match: StoredMatch | None,
        lookback: dt.timedelta,
        *,
        deterministic_only: bool = False,
    ) -> StoredMatch:
        if match is not None and match.stage is not Stage.NONE:
            return match  # decided once: a later click never steals it
        # A pending pix/boleto fixed the purchase time; the approval days later keeps it.
        at = match.purchase_time if match is not None else purchase.event_time
        started = time.perf_counter()
        decision = await self._engine.decide(
            conn, purchase, at, lookback, deterministic_only=deterministic_only
        )
        self._metrics.match_duration.record(
            (time.perf_counter() - started) * 1000, {"stage": decision.stage.value}
        )
        if match is None:
            return await self._store.save_match(conn, purchase, decision, at)
        if decision.stage is not Stage.NONE and await self._store.upgrade_unmatched(
            conn, match.id, decision
        ):
            click = decision.click
            identities = (
                await self._store.session_identities(conn, purchase.tenant_id, click.session_id)
                if click is not None
                else []
            )
            return StoredMatch(
                match.id, decision.stage, decision.method, click, decision.score, at, identities
            )
        return match

    async def _register(
        self,
        conn: Connection,
        *,
        message_id: str,
        purchase: Purchase,
        match: StoredMatch,
        event_name: str,
        setup: TenantSetup,
    ) -> ConversionResult:
        event_id = compute_event_id(
            purchase.tenant_id, purchase.gateway, purchase.order_id, event_name
        )
        bind_context(event_id=event_id)
        click = match.click
        # A purchase with both its own hashes takes none from the session.
        identities = [] if purchase.email_hash and purchase.phone_hash else match.identities
        route = setup.route(purchase.funnel_id or (click.funnel_id if click else None))
        built = build_dispatch(
            purchase=purchase,
            event_name=event_name,
            event_id=event_id,
            click=click,
            identities=identities,
            route=route,
            stage=match.stage,
            score=match.score,
            now=self._clock(),
        )
        outcome = Outcome.QUEUED if route.destination is not None else Outcome.NO_DESTINATION
        registered = await self._store.register_event(
            conn,
            purchase,
            message_id,
            Registration(
                event_id=event_id,
                event_name=event_name,
                source_status=purchase.status,
                match_id=match.id,
                stage=match.stage,
                emq=built.emq.score,
                low_emq=built.emq.low,
                event_time=purchase.event_time,
                funnel_id=route.funnel_id,
                pixel_id=route.destination.pixel_id if route.destination else None,
                outcome=outcome.value,
                reason=route.reason if outcome is Outcome.NO_DESTINATION else None,
                score=match.score,
            ),
        )
        if not registered:
            outcome = Outcome.DUPLICATE
        elif route.destination is not None:
            await outbox.enqueue(
                conn,
                schema=SCHEMA,
                routing_key=CAPI_DISPATCH,
                message_id=built.request.message_id,
                message_type=DISPATCH_TYPE,
                body=built.request.SerializeToString(),
            )
        return ConversionResult(outcome, match.stage, event_id, built.emq)

    def _after_commit(self, purchase: Purchase, result: ConversionResult, reason: str) -> None:
        """Counters and alerts only for what was committed (a rolled-back try counts nothing)."""
        stage = result.stage.value if result.stage is not None else "unmatched"
        self._metrics.conversions.add(
            1, {"tenant_id": purchase.tenant_id, "outcome": result.outcome.value, "stage": stage}
        )
        if result.outcome is Outcome.NO_DESTINATION:
            log.warning(
                "conversion recorded but not dispatched: the tenant has no Meta destination",
                tenant_id=purchase.tenant_id,
                event_id=result.event_id,
                gateway=purchase.gateway,
            )
        elif result.outcome is Outcome.NOT_DISPATCHED:
            log.debug(
                "conversion recorded without an event",
                tenant_id=purchase.tenant_id,
                gateway=purchase.gateway,
                reason=reason,
            )
        emq = result.emq
        sent_or_held = result.outcome in (Outcome.QUEUED, Outcome.NO_DESTINATION)
        if emq is not None and sent_or_held:
            # Per tenant: the EMQ alarm averages it over an hour (docs/metrics.md).
            self._metrics.emq.record(emq.score, {"tenant_id": purchase.tenant_id})
        if emq is not None and emq.low and sent_or_held:
            self._metrics.emq_low.add(1, {"tenant_id": purchase.tenant_id})
            log.warning(
                "low event match quality",
                tenant_id=purchase.tenant_id,
                event_id=result.event_id,
                emq=emq.score,
                missing=list(emq.missing),
            )
