"""Delivering one destination's batch to Meta: claim the events, validate them, then, holding one
of the ``concurrency`` POST slots, ask the breaker and POST (splitting on a refused payload), then
commit every event's new state, every attempt and the breaker in one transaction, publishing
retry and park copies before that commit.

Copies and the stale rule: every message copy carries the number of POSTs recorded for its event
when the copy was made (``copy``). A copy is published before the transaction that raises
``attempts`` commits, so a crash leaves either the old message (redelivered, ``copy`` equal to the
stored count) or the new copy, never neither; a copy whose number is below the stored count is a
leftover and is dropped. A copy that finds its event claimed by a live batch waits in a delay
queue instead of reaching Meta alongside it.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import itertools
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import asyncpg
import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from trackai.common.v1 import events_pb2 as common_pb
from trackai.matcher.v1 import events_pb2 as matcher_pb
from trackai_dispatcher.adapters import repository as repo
from trackai_dispatcher.adapters.destinations import (
    Credentials,
    DestinationResolver,
)
from trackai_dispatcher.adapters.meta import event_payload
from trackai_dispatcher.domain.breaker import (
    Breaker,
    BreakerPolicy,
    BreakerState,
    Gate,
    Transition,
)
from trackai_dispatcher.domain.classification import MetaAnswer, Verdict, classify
from trackai_dispatcher.domain.model import (
    AttemptOutcome,
    Destination,
    Reason,
    RetryLadder,
    State,
    is_expired,
)
from trackai_dispatcher.domain.validation import validate
from trackai_kit.failures import is_transient_rpc_error, rpc_error_text
from trackai_kit.logging import get_logger
from trackai_kit.telemetry import get_meter

log = get_logger(__name__)
_meter = get_meter("trackai.dispatcher")
# Labels come from bounded sets only (states, reasons, verdicts, ladder steps); tenant ids only
# where an alarm must name the tenant (token errors), bounded by the number of tenants.
EVENTS = _meter.create_counter(
    "trackai.dispatcher.events",
    unit="{event}",
    description="Events by resulting state and reason (dead and expired ones included)",
)
REQUESTS = _meter.create_counter(
    "trackai.dispatcher.meta.requests",
    unit="{request}",
    description="POSTs to Meta by verdict (Meta's error class)",
)
BATCH_SIZE = _meter.create_histogram(
    "trackai.dispatcher.batch.size",
    unit="{event}",
    description="Events per POST",
    explicit_bucket_boundaries_advisory=[1, 10, 50, 100, 250, 500, 1000],
)
META_LATENCY = _meter.create_histogram(
    "trackai.dispatcher.meta.duration",
    unit="s",
    description="Dispatch latency: one POST to Meta, sent to answer (or timeout)",
    explicit_bucket_boundaries_advisory=[0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 5],
)
#: The seed's dispatch-latency objective: p95 under 0.5 s (the `dispatch-latency` alarm's
#: threshold; tests/contract/test_cloudwatch.py keeps them equal). CloudWatch cannot read a
#: histogram, so there the alarm reads the share of POSTs slower than this: p95 > T exactly when
#: more than 5 % of the POSTs take longer than T.
META_SLOW_S = 0.5
META_SLOW = _meter.create_counter(
    "trackai.dispatcher.meta.slow_requests",
    unit="{request}",
    description=f"POSTs to Meta slower than {META_SLOW_S} s (the p95 alarm's CloudWatch source)",
)
BREAKER = _meter.create_counter(
    "trackai.dispatcher.breaker.transitions",
    unit="{transition}",
    description="Destination breaker transitions (open, half-open, close)",
)
RETRIES = _meter.create_counter(
    "trackai.dispatcher.retries",
    unit="{retry}",
    description="Retries scheduled, by step of the retry ladder (1 = first retry)",
)
EXPIRED = _meter.create_counter(
    "trackai.dispatcher.expired",
    unit="{event}",
    description="Undelivered events expired by the sweep (past Meta's 7-day limit)",
)
TOKEN_ERRORS = _meter.create_counter(
    "trackai.dispatcher.token_errors",
    unit="{error}",
    description="Meta token errors (190) by tenant: alert on any",
)

#: Meta's subcode for "event timestamp too old": the event expired, it is not malformed.
SUBCODE_TOO_OLD = 2804003
TOO_OLD_DETAIL = "past Meta's 7-day limit for event_time"


class Disposition(enum.StrEnum):
    """What happens to a delivered message once its batch is committed."""

    ACK = "ack"
    #: Handed back (shutdown): the broker redelivers it at once.
    REQUEUE = "requeue"
    #: Its batch failed (database or broker trouble): a copy waits in a delay queue, the
    #: original is acked, so the failure neither spins nor counts against the delivery limit.
    RETRY = "retry"


class Publisher(Protocol):
    async def delay(self, request: matcher_pb.DispatchRequest, copy: int, delay_ms: int) -> None:
        """Publish a copy to the delay queue of ``delay_ms`` (confirmed before returning)."""


class Notifier(Protocol):
    async def statuses(self, updates: Sequence[common_pb.StatusUpdate]) -> None:
        """Publish status updates (notifications: the state itself is in the database)."""


class MetaPoster(Protocol):
    async def post_events(
        self,
        pixel_id: str,
        access_token: str,
        events: list[dict[str, Any]],
        test_event_code: str | None,
    ) -> MetaAnswer: ...


@dataclass(frozen=True)
class Delivery:
    request: matcher_pb.DispatchRequest
    #: POSTs recorded for this event when this copy was published (0 for the matcher's own).
    copy: int = 0

    @property
    def event_id(self) -> str:
        return self.request.event.event_id

    @functools.cached_property
    def payload(self) -> dict[str, Any]:
        """The event in Meta's JSON form, built once (stored, then posted)."""
        return event_payload(self.request.event)


@dataclass
class _Outcome:
    verdict: Verdict
    answer: MetaAnswer


@dataclass
class _Batch:
    """Working state of one batch between its two transactions."""

    id: uuid.UUID
    destination: Destination
    changes: list[repo.Change] = field(default_factory=list)
    redelays: list[tuple[Delivery, int, int]] = field(default_factory=list)
    attempts: list[repo.AttemptRecord] = field(default_factory=list)
    statuses: list[tuple[str, State, str]] = field(default_factory=list)
    posts: dict[str, int] = field(default_factory=dict)
    results: dict[str, _Outcome] = field(default_factory=dict)
    verdicts: list[MetaAnswer] = field(default_factory=list)
    handed_back: set[str] = field(default_factory=set)
    #: Funnels without usable credentials for a known reason (the registry refused the
    #: dispatcher, or cannot decrypt the token): the dead letter's detail.
    unusable: dict[str, str] = field(default_factory=dict)
    #: A half-open breaker's probe: Meta may still be down, which is not the events' fault.
    probe: bool = False

    def change(self, change: repo.Change, status_detail: str = "") -> None:
        self.changes.append(change)
        if change.state in (State.SENT, State.DEAD, State.PARKED, State.EXPIRED):
            self.statuses.append((change.event_id, change.state, status_detail))
        if change.state is not None:
            EVENTS.add(1, {"state": change.state.value, "reason": change.reason or ""})


class Dispatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        meta: MetaPoster,
        destinations: DestinationResolver,
        publisher: Publisher,
        notifier: Notifier,
        *,
        policy: BreakerPolicy,
        ladder: RetryLadder,
        claim_lease_s: float,
        concurrency: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._meta = meta
        self._destinations = destinations
        self._publisher = publisher
        self._notifier = notifier
        self._policy = policy
        self._ladder = ladder
        self._lease_s = claim_lease_s
        self._clock = clock
        # Only the POSTs are limited to ``concurrency``: batches store, claim and commit around
        # them, so each POST slot goes from one answer straight to the next prepared batch.
        self._posting = asyncio.Semaphore(concurrency)
        # Status notifications go out in the background: a batch's messages are acked (and its
        # worker freed) once its state is committed, not once the console was told.
        self._notifying: set[asyncio.Task[None]] = set()

    async def dispatch(
        self,
        destination: Destination,
        deliveries: Sequence[Delivery],
        stopping: Callable[[], bool] = lambda: False,
    ) -> list[Disposition]:
        """Deliver one destination's messages; answers a :class:`Disposition` per message."""
        batch = _Batch(uuid.uuid4(), destination)
        chosen: dict[str, Delivery] = {}
        for delivery in deliveries:
            # Two copies of one event in a batch: the newer one speaks for both.
            known = chosen.get(delivery.event_id)
            if known is None or delivery.copy > known.copy:
                chosen[delivery.event_id] = delivery
            if known is not None:
                log.info("leftover copy dropped", event_id=delivery.event_id, why="same batch")
        credentials = await self._credentials(batch, chosen.values())
        go = await self._prepare(batch, list(chosen.values()), credentials)
        self._notify(batch)
        if go:
            await self._posting.acquire()
            holding = True
            try:
                go, quiet = await self._admit(batch, go)
                if go:
                    await self._send_all(batch, go, credentials, stopping)
                    if quiet and not any(classify(a).breaker_failure for a in batch.verdicts):
                        # Nothing for the breaker to record: the next batch may post before
                        # this one commits. Otherwise it waits, and sees what this one counted.
                        self._posting.release()
                        holding = False
                    await self._finish(batch, go)
            finally:
                if holding:
                    self._posting.release()
            self._notify(batch)
        return [
            Disposition.REQUEUE if d.event_id in batch.handed_back else Disposition.ACK
            for d in deliveries
        ]

    async def _credentials(
        self, batch: _Batch, deliveries: Iterable[Delivery]
    ) -> dict[str, Credentials | None] | None:
        """Token and test code per funnel; None when the registry cannot answer right now.

        A definitive refusal (PERMISSION_DENIED, INVALID_ARGUMENT, FAILED_PRECONDITION...) is
        not retried: no funnel has credentials, so the events go dead (replayable once fixed).
        """
        destination = batch.destination
        funnels = {d.request.funnel_id for d in deliveries}
        found: dict[str, Credentials | None] = {}
        try:
            for funnel in funnels:
                try:
                    found[funnel] = await self._destinations.credentials(
                        destination.tenant_id, funnel, destination.pixel_id
                    )
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                        raise
                    # The registry cannot open the credential this funnel's events need (it
                    # says which): those events are dead until it is set again; others go on.
                    found[funnel] = None
                    batch.unusable[funnel] = rpc_error_text(exc)
                    log.error(
                        "Meta credential cannot be used; the events that need it are dead",
                        destination=str(destination),
                        funnel_id=funnel,
                        error=batch.unusable[funnel],
                    )
        except grpc.aio.AioRpcError as exc:
            if is_transient_rpc_error(exc):
                self._registry_unavailable(destination, exc)
                return None
            refusal = f"the tenant registry refused the dispatcher ({rpc_error_text(exc)})"
            log.error(
                "tenant registry refused the dispatcher; the batch's events are dead",
                destination=str(destination),
                error=refusal,
            )
            batch.unusable = dict.fromkeys(funnels, refusal)
            return dict.fromkeys(funnels)
        except Exception as exc:
            self._registry_unavailable(destination, exc)
            return None
        return found

    def _registry_unavailable(self, destination: Destination, exc: Exception) -> None:
        log.warning(
            "tenant registry unavailable; deferring the batch",
            destination=str(destination),
            error=repr(exc),
        )

    # --- transaction 1: store, sort out, claim ----------------------------------------------
    async def _prepare(
        self,
        batch: _Batch,
        deliveries: list[Delivery],
        credentials: dict[str, Credentials | None] | None,
    ) -> list[tuple[Delivery, repo.Current]]:
        now = self._clock()
        go: list[tuple[Delivery, repo.Current]] = []
        async with self._pool.acquire() as conn, conn.transaction():
            await repo.insert_new(conn, [_new_dispatch(d) for d in deliveries])
            current = await repo.lock_current(conn, [d.event_id for d in deliveries])
            for delivery in deliveries:
                row = current[delivery.event_id]
                if row.state not in (State.PENDING, State.RETRYING, State.PARKED):
                    # Delivered, dead or expired: this copy is a leftover. Rare (a crash, a
                    # redelivery, a copy that waited out a live batch), so worth a line.
                    log.info("leftover copy dropped", event_id=delivery.event_id, why="settled")
                    continue
                if delivery.copy < row.attempts:
                    log.info("leftover copy dropped", event_id=delivery.event_id, why="superseded")
                    continue
                if row.claimed or credentials is None:
                    # Another batch holds it (or the registry is down): come back shortly.
                    batch.redelays.append((delivery, delivery.copy, self._ladder.delays_ms[0]))
                    continue
                verdict = self._admissible(delivery, row, credentials, now, batch.unusable)
                if verdict is not None:
                    batch.change(verdict, verdict.reason or "")
                    if verdict.reason == Reason.INVALID_EVENT:
                        batch.attempts.append(self._invalid_attempt(batch, delivery, verdict, now))
                    continue
                go.append((delivery, row))
            if go:
                await repo.claim(conn, [d.event_id for d, _ in go], batch.id, self._lease_s)
            await self._write_decided(conn, batch)
        return go

    async def _write_decided(self, conn: repo.Conn, batch: _Batch) -> None:
        """Inside a transaction: the attempts and state changes decided so far, and the copies
        to delay (published before the commit, see the module docstring)."""
        for record in batch.attempts:
            await repo.record_attempt(conn, record)
        batch.attempts.clear()
        await repo.apply_changes(conn, batch.changes)
        batch.changes.clear()
        await self._publish_redelays(batch)

    def _admissible(
        self,
        delivery: Delivery,
        row: repo.Current,
        credentials: dict[str, Credentials | None],
        now: datetime,
        unusable: dict[str, str],
    ) -> repo.Change | None:
        event = delivery.request.event
        if is_expired(event.event_time, now.timestamp()):
            return repo.Change(
                row.event_id, State.EXPIRED, reason=Reason.EVENT_TOO_OLD, detail=TOO_OLD_DETAIL
            )
        problem = validate(event, now.timestamp())
        if problem is not None:
            return repo.Change(
                row.event_id, State.DEAD, reason=Reason.INVALID_EVENT, detail=str(problem)
            )
        if credentials.get(delivery.request.funnel_id) is None:
            return repo.Change(
                row.event_id,
                State.DEAD,
                reason=Reason.NO_DESTINATION,
                detail=unusable.get(delivery.request.funnel_id)
                or (
                    f"no Meta destination of this tenant reaches pixel {delivery.request.pixel_id}"
                    " (or it has no access token)"
                ),
            )
        return None

    def _invalid_attempt(
        self, batch: _Batch, delivery: Delivery, change: repo.Change, now: datetime
    ) -> repo.AttemptRecord:
        return repo.AttemptRecord(
            batch_id=batch.id,
            destination=batch.destination,
            attempt=1,
            event_ids=[delivery.event_id],
            started_at=now,
            finished_at=now,
            latency_ms=0.0,
            outcome=AttemptOutcome.INVALID,
            error_message=change.detail,
        )

    # --- the breaker, holding a POST slot ------------------------------------------------------
    async def _admit(
        self, batch: _Batch, go: list[tuple[Delivery, repo.Current]]
    ) -> tuple[list[tuple[Delivery, repo.Current]], bool]:
        """What the breaker lets through now, and whether it was closed without failures.

        Asked once the batch holds a POST slot, so it sees what the batches posted before it
        recorded. A closed breaker admits without changing: no lock, so batches of one
        destination do not queue on its row. An open one parks the claimed events.
        """
        now = self._clock()
        async with self._pool.acquire() as conn:
            breaker = await repo.read_breaker(conn, batch.destination)
            if breaker.state is BreakerState.CLOSED:
                return go, breaker.consecutive_failures == 0
            async with conn.transaction():
                breaker = await repo.lock_breaker(conn, batch.destination)
                gate, admitted = self._policy.admit(breaker, now)
                if gate is Gate.SEND:
                    return go, False
                if gate is Gate.PROBE:
                    await repo.save_breaker(conn, batch.destination, admitted)
                    log.info("breaker half-open: probing", destination=str(batch.destination))
                    batch.probe = True
                    return go, False
                self._park(batch, go, admitted, now)
                await self._write_decided(conn, batch)
        return [], False

    def _park(
        self,
        batch: _Batch,
        go: list[tuple[Delivery, repo.Current]],
        breaker: Breaker,
        now: datetime,
    ) -> None:
        release = breaker.probe_after or now + self._policy.cooldown
        wait_ms = max(0, int((release - now).total_seconds() * 1000))
        for delivery, row in go:
            batch.change(
                repo.Change(row.event_id, State.PARKED, next_attempt_at=release),
                f"destination breaker open ({breaker.reason or 'failures'})",
            )
            batch.redelays.append((delivery, delivery.copy, self._ladder.park_delay(wait_ms)))
        # One `breaker_open` attempt when an event is first parked; its returns before the
        # probe only count on its row (`park_cycles`), or each would add an attempt row.
        first_parked = [d.event_id for d, row in go if row.state is not State.PARKED]
        if not first_parked:
            return
        batch.attempts.append(
            repo.AttemptRecord(
                batch_id=batch.id,
                destination=batch.destination,
                attempt=1,
                event_ids=first_parked,
                started_at=now,
                finished_at=now,
                latency_ms=0.0,
                outcome=AttemptOutcome.BREAKER_OPEN,
                error_message=f"breaker {breaker.state.value}: {breaker.reason or ''}",
            )
        )

    # --- the POSTs ----------------------------------------------------------------------------
    async def _send_all(
        self,
        batch: _Batch,
        go: list[tuple[Delivery, repo.Current]],
        credentials: dict[str, Credentials | None] | None,
        stopping: Callable[[], bool],
    ) -> None:
        assert credentials is not None
        groups: dict[tuple[str, str | None], list[Delivery]] = {}
        for delivery, _ in go:
            creds = credentials[delivery.request.funnel_id]
            assert creds is not None
            groups.setdefault((creds.access_token, creds.test_event_code), []).append(delivery)
        sequence = itertools.count(1)
        for (token, test_code), part in groups.items():
            if stopping():
                batch.handed_back.update(d.event_id for d in part)
                continue
            await self._send(batch, part, token, test_code, sequence=sequence, stopping=stopping)

    async def _send(
        self,
        batch: _Batch,
        part: list[Delivery],
        token: str,
        test_code: str | None,
        *,
        sequence: itertools.count[int],
        stopping: Callable[[], bool],
    ) -> None:
        started = self._clock()
        answer = await self._meta.post_events(
            batch.destination.pixel_id,
            token,
            [d.payload for d in part],
            test_code,
        )
        verdict = classify(answer)
        REQUESTS.add(1, {"verdict": verdict.value})
        BATCH_SIZE.record(len(part))
        META_LATENCY.record(answer.latency_ms / 1000)
        if answer.latency_ms > META_SLOW_S * 1000:
            META_SLOW.add(1)
        batch.verdicts.append(answer)
        batch.attempts.append(
            repo.AttemptRecord(
                batch_id=batch.id,
                destination=batch.destination,
                attempt=next(sequence),
                event_ids=[d.event_id for d in part],
                started_at=started,
                finished_at=self._clock(),
                latency_ms=answer.latency_ms,
                outcome=verdict.outcome,
                http_status=answer.http_status,
                meta_code=answer.code,
                meta_subcode=answer.subcode,
                is_transient=answer.is_transient,
                fbtrace_id=answer.fbtrace_id,
                events_received=answer.events_received,
                error_message=answer.message,
                test_event_code=test_code,
            )
        )
        for delivery in part:
            batch.posts[delivery.event_id] = batch.posts.get(delivery.event_id, 0) + 1
        if verdict is Verdict.PAYLOAD and len(part) > 1:
            if stopping():
                batch.handed_back.update(d.event_id for d in part)
                return
            # One bad event refuses the whole request: halve until the offenders stand alone.
            middle = len(part) // 2
            await asyncio.gather(
                self._send(
                    batch, part[:middle], token, test_code, sequence=sequence, stopping=stopping
                ),
                self._send(
                    batch, part[middle:], token, test_code, sequence=sequence, stopping=stopping
                ),
            )
            return
        for delivery in part:
            batch.results[delivery.event_id] = _Outcome(verdict, answer)

    # --- transaction 2: outcomes, attempts, breaker -----------------------------------------
    async def _finish(self, batch: _Batch, go: list[tuple[Delivery, repo.Current]]) -> None:
        now = self._clock()
        for delivery, row in go:
            if delivery.event_id in batch.handed_back:
                # Not attempts: the redelivered original must still pass the stale rule.
                batch.changes.append(repo.Change(row.event_id, None))
                continue
            self._settle_event(batch, delivery, row, batch.results[delivery.event_id], now)
        async with self._pool.acquire() as conn, conn.transaction():
            await repo.apply_changes(conn, batch.changes)
            for record in batch.attempts:
                await repo.record_attempt(conn, record)
            # Last, so a breaker row locked here is held only until the commit.
            await self._record_breaker(conn, batch, now)
            await self._publish_redelays(batch)

    def _settle_event(
        self,
        batch: _Batch,
        delivery: Delivery,
        row: repo.Current,
        outcome: _Outcome,
        now: datetime,
    ) -> None:
        posts = batch.posts.get(row.event_id, 0)
        answer, verdict = outcome.answer, outcome.verdict

        def change(state: State, **fields: Any) -> repo.Change:
            return repo.Change(
                row.event_id,
                state,
                posts=posts,
                http_status=answer.http_status,
                code=answer.code,
                subcode=answer.subcode,
                **fields,
            )

        copy = row.attempts + posts
        if verdict is Verdict.SENT:
            batch.change(change(State.SENT))
            return
        detail = _detail(answer)
        too_old = verdict is Verdict.PAYLOAD and answer.subcode == SUBCODE_TOO_OLD
        if too_old or is_expired(delivery.request.event.event_time, now.timestamp()):
            expired = change(State.EXPIRED, reason=Reason.EVENT_TOO_OLD, detail=TOO_OLD_DETAIL)
            batch.change(expired, Reason.EVENT_TOO_OLD)
            return
        reason = Reason.META_REJECTED if verdict is Verdict.PAYLOAD else Reason.META_PERMANENT
        if (
            verdict in (Verdict.RETRYABLE, Verdict.TIMEOUT)
            and batch.probe
            and verdict.breaker_failure
        ):
            # A failed probe says Meta is still down: its events wait for the next probe like
            # every other parked event, without using their ladder. Otherwise the head of the
            # parked backlog, probed after each cool-down, would die while Meta is down.
            parked = change(
                State.PARKED, reason=verdict.value, detail=detail,
                next_attempt_at=now + self._policy.cooldown,
            )  # fmt: skip
            batch.change(parked, "destination breaker open (probe failed)")
            wait_ms = int(self._policy.cooldown.total_seconds() * 1000)
            batch.redelays.append((delivery, copy, self._ladder.park_delay(wait_ms)))
            return
        if verdict in (Verdict.RETRYABLE, Verdict.TIMEOUT):
            delay = self._ladder.delay_for(row.retry_step)
            if delay is not None:
                retrying = change(
                    State.RETRYING,
                    retry_step=row.retry_step + 1,
                    reason=verdict.value,
                    detail=detail,
                    next_attempt_at=now + timedelta(milliseconds=delay),
                )
                batch.change(retrying)
                batch.redelays.append((delivery, copy, delay))
                RETRIES.add(1, {"step": row.retry_step + 1})
                return
            reason = Reason.RETRIES_EXHAUSTED
            detail = f"{len(self._ladder.delays_ms)} retries used; last: {detail}"
        elif verdict is Verdict.TOKEN:
            parked = change(
                State.PARKED,
                reason=Reason.META_TOKEN,
                detail=detail,
                next_attempt_at=now + self._policy.cooldown,
            )
            batch.change(parked, "access token rejected by Meta (190); destination breaker open")
            wait_ms = int(self._policy.cooldown.total_seconds() * 1000)
            batch.redelays.append((delivery, copy, self._ladder.park_delay(wait_ms)))
            return
        batch.change(change(State.DEAD, reason=reason, detail=detail), reason)

    async def _record_breaker(self, conn: repo.Conn, batch: _Batch, now: datetime) -> None:
        if not any(classify(answer).breaker_failure for answer in batch.verdicts):
            # Answers only: they reset a count that a closed breaker without failures does not
            # have, so there is nothing to write and no row to lock.
            current = await repo.read_breaker(conn, batch.destination)
            if current.state is BreakerState.CLOSED and current.consecutive_failures == 0:
                return
        breaker = await repo.lock_breaker(conn, batch.destination)
        before = breaker
        for answer in batch.verdicts:
            verdict = classify(answer)
            breaker, transition = self._policy.record(
                breaker,
                verdict,
                now,
                code=answer.code,
                subcode=answer.subcode,
                reason=_detail(answer) if verdict.breaker_failure else None,
            )
            if verdict is Verdict.TOKEN:
                self._token_alert(batch.destination, answer)
            if transition is not None:
                self._log_transition(batch.destination, transition, breaker.reason)
        if breaker != before:
            await repo.save_breaker(conn, batch.destination, breaker)

    def _token_alert(self, destination: Destination, answer: MetaAnswer) -> None:
        TOKEN_ERRORS.add(1, {"tenant_id": destination.tenant_id})
        self._destinations.forget(destination.tenant_id)
        log.error(
            "ALERT: Meta rejected the access token; destination parked until it is replaced",
            tenant_id=destination.tenant_id,
            pixel_id=destination.pixel_id,
            meta_code=answer.code,
            meta_subcode=answer.subcode,
            fbtrace_id=answer.fbtrace_id,
        )

    def _log_transition(
        self, destination: Destination, transition: Transition, reason: str | None
    ) -> None:
        BREAKER.add(1, {"transition": transition.value})
        if transition is Transition.CLOSED:
            log.info("breaker closed", destination=str(destination))
        else:
            log.warning(
                f"breaker {transition.value}",
                destination=str(destination),
                tenant_id=destination.tenant_id,
                reason=reason,
            )

    # --- publishing ---------------------------------------------------------------------------
    async def _publish_redelays(self, batch: _Batch) -> None:
        # Inside the transaction, before it commits: see the module docstring.
        await asyncio.gather(
            *(self._publisher.delay(d.request, copy, ms) for d, copy, ms in batch.redelays)
        )
        batch.redelays.clear()

    def _notify(self, batch: _Batch) -> None:
        if not batch.statuses:
            return
        for event_id, state, reason in batch.statuses:
            if state is State.DEAD:
                # Committed: the sale will not reach Meta unless someone replays it (Sentry).
                log.error("conversion dead; it will not reach Meta", event_id=event_id,
                          tenant_id=batch.destination.tenant_id, reason=reason)  # fmt: skip
        task = asyncio.create_task(self._publish_statuses(batch.destination, batch.statuses))
        batch.statuses = []
        self._notifying.add(task)
        task.add_done_callback(self._notifying.discard)

    async def flush_notifications(self) -> None:
        """Wait for the status updates still being published (shutdown)."""
        if self._notifying:
            await asyncio.wait(set(self._notifying))

    async def _publish_statuses(
        self, destination: Destination, statuses: list[tuple[str, State, str]]
    ) -> None:
        now = Timestamp()
        now.FromDatetime(self._clock())
        updates = [
            common_pb.StatusUpdate(
                tenant_id=destination.tenant_id,
                entity=common_pb.STATUS_ENTITY_DISPATCH,
                entity_id=event_id,
                status=state.value,
                detail=detail,
                time=now,
            )
            for event_id, state, detail in statuses
        ]
        try:
            await self._notifier.statuses(updates)
        except Exception:
            # A notification: the state is committed and readable through the gRPC API.
            log.warning("status updates not published", count=len(updates), exc_info=True)


def _detail(answer: MetaAnswer) -> str:
    if answer.http_status is None:
        return f"no answer: {answer.message}"
    code = f"{answer.code}/{answer.subcode}" if answer.subcode else f"{answer.code}"
    return f"HTTP {answer.http_status}, code {code}: {answer.message or ''}".strip()


def _new_dispatch(delivery: Delivery) -> repo.NewDispatch:
    request = delivery.request
    return repo.NewDispatch(
        event_id=delivery.event_id,
        tenant_id=request.tenant_id,
        pixel_id=request.pixel_id,
        funnel_id=request.funnel_id,
        conversion_id=request.conversion_id,
        event_name=request.event.event_name,
        event_time=request.event.event_time,
        payload=delivery.payload,
        match_stage=matcher_pb.MatchStage.Name(request.match_stage) if request.match_stage else "",
        match_score=request.match_score,
        emq=request.emq,
    )
