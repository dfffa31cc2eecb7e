"""Transaction 1's decisions: which messages of a batch are leftovers, which wait (claimed
elsewhere, registry down), which are settled before any POST (expired, invalid, no destination)
and which go on to Meta; and what an open breaker does to the ones that would go."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from trackai_dispatcher.domain.breaker import Breaker, BreakerPolicy
from trackai_dispatcher.domain.model import AttemptOutcome, Reason, RetryLadder, State, is_expired
from trackai_dispatcher.domain.validation import validate
from trackai_dispatcher.service_layer.batch import TOO_OLD_DETAIL, Batch
from trackai_dispatcher.service_layer.ports import (
    AttemptRecord,
    Change,
    Credentials,
    Current,
    Delivery,
)
from trackai_kit.logging import get_logger

log = get_logger(__name__)

#: The copies a batch sends, each with its stored state under the row lock.
Go = list[tuple[Delivery, Current]]


def sort_out(
    batch: Batch,
    deliveries: Sequence[Delivery],
    current: dict[str, Current],
    credentials: dict[str, Credentials | None] | None,
    *,
    ladder: RetryLadder,
    now: datetime,
) -> Go:
    """Record in ``batch`` what becomes of each copy before any POST; answer the ones to send."""
    go: Go = []
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
            batch.redelays.append((delivery, delivery.copy, ladder.delays_ms[0]))
            continue
        verdict = admissible(delivery, row, credentials, now, batch.unusable)
        if verdict is not None:
            batch.change(verdict, verdict.reason or "")
            if verdict.reason == Reason.INVALID_EVENT:
                batch.attempts.append(invalid_attempt(batch, delivery, verdict, now))
            continue
        go.append((delivery, row))
    return go


def admissible(
    delivery: Delivery,
    row: Current,
    credentials: dict[str, Credentials | None],
    now: datetime,
    unusable: dict[str, str],
) -> Change | None:
    """None when the event may be posted; otherwise the state it ends in without a POST."""
    conversion = delivery.conversion
    event = conversion.event
    if is_expired(event.event_time, now.timestamp()):
        return Change(
            row.event_id, State.EXPIRED, reason=Reason.EVENT_TOO_OLD, detail=TOO_OLD_DETAIL
        )
    problem = validate(event, now.timestamp())
    if problem is not None:
        return Change(row.event_id, State.DEAD, reason=Reason.INVALID_EVENT, detail=str(problem))
    if credentials.get(conversion.funnel_id) is None:
        return Change(
            row.event_id,
            State.DEAD,
            reason=Reason.NO_DESTINATION,
            detail=unusable.get(conversion.funnel_id)
            or (
                f"no Meta destination of this tenant reaches pixel {conversion.pixel_id}"
                " (or it has no access token)"
            ),
        )
    return None


def invalid_attempt(
    batch: Batch, delivery: Delivery, change: Change, now: datetime
) -> AttemptRecord:
    return AttemptRecord(
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


def park(
    batch: Batch,
    go: Go,
    breaker: Breaker,
    *,
    policy: BreakerPolicy,
    ladder: RetryLadder,
    now: datetime,
) -> None:
    """The breaker is open: the claimed events wait for its probe in a delay queue."""
    release = breaker.probe_after or now + policy.cooldown
    wait_ms = max(0, int((release - now).total_seconds() * 1000))
    for delivery, row in go:
        batch.change(
            Change(row.event_id, State.PARKED, next_attempt_at=release),
            f"destination breaker open ({breaker.reason or 'failures'})",
        )
        batch.redelays.append((delivery, delivery.copy, ladder.park_delay(wait_ms)))
    # One `breaker_open` attempt when an event is first parked; its returns before the
    # probe only count on its row (`park_cycles`), or each would add an attempt row.
    first_parked = [d.event_id for d, row in go if row.state is not State.PARKED]
    if not first_parked:
        return
    batch.attempts.append(
        AttemptRecord(
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
