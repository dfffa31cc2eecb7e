"""Transaction 2's decisions: what Meta's answer makes of each posted event (sent, expired,
retried on the ladder, parked behind the breaker, or dead) and which copies go to a delay
queue."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from trackai_dispatcher.domain.breaker import BreakerPolicy
from trackai_dispatcher.domain.classification import Verdict
from trackai_dispatcher.domain.model import Reason, RetryLadder, State, is_expired
from trackai_dispatcher.service_layer.batch import (
    SUBCODE_TOO_OLD,
    TOO_OLD_DETAIL,
    Batch,
    Outcome,
    detail,
)
from trackai_dispatcher.service_layer.metrics import RETRIES
from trackai_dispatcher.service_layer.ports import Change, Current, Delivery


def settle_event(
    batch: Batch,
    delivery: Delivery,
    row: Current,
    outcome: Outcome,
    *,
    policy: BreakerPolicy,
    ladder: RetryLadder,
    now: datetime,
) -> None:
    """Record in ``batch`` the event's new state after its POSTs, and its copy to delay."""
    posts = batch.posts.get(row.event_id, 0)
    answer, verdict = outcome.answer, outcome.verdict

    def change(state: State, **fields: Any) -> Change:
        return Change(
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
    said = detail(answer)
    too_old = verdict is Verdict.PAYLOAD and answer.subcode == SUBCODE_TOO_OLD
    if too_old or is_expired(delivery.conversion.event.event_time, now.timestamp()):
        expired = change(State.EXPIRED, reason=Reason.EVENT_TOO_OLD, detail=TOO_OLD_DETAIL)
        batch.change(expired, Reason.EVENT_TOO_OLD)
        return
    reason = Reason.META_REJECTED if verdict is Verdict.PAYLOAD else Reason.META_PERMANENT
    if verdict in (Verdict.RETRYABLE, Verdict.TIMEOUT) and batch.probe and verdict.breaker_failure:
        # A failed probe says Meta is still down: its events wait for the next probe like
        # every other parked event, without using their ladder. Otherwise the head of the
        # parked backlog, probed after each cool-down, would die while Meta is down.
        parked = change(
            State.PARKED, reason=verdict.value, detail=said,
            next_attempt_at=now + policy.cooldown,
        )  # fmt: skip
        batch.change(parked, "destination breaker open (probe failed)")
        wait_ms = int(policy.cooldown.total_seconds() * 1000)
        batch.redelays.append((delivery, copy, ladder.park_delay(wait_ms)))
        return
    if verdict in (Verdict.RETRYABLE, Verdict.TIMEOUT):
        delay = ladder.delay_for(row.retry_step)
        if delay is not None:
            retrying = change(
                State.RETRYING,
                retry_step=row.retry_step + 1,
                reason=verdict.value,
                detail=said,
                next_attempt_at=now + timedelta(milliseconds=delay),
            )
            batch.change(retrying)
            batch.redelays.append((delivery, copy, delay))
            RETRIES.add(1, {"step": row.retry_step + 1})
            return
        reason = Reason.RETRIES_EXHAUSTED
        said = f"{len(ladder.delays_ms)} retries used; last: {said}"
    elif verdict is Verdict.TOKEN:
        parked = change(
            State.PARKED,
            reason=Reason.META_TOKEN,
            detail=said,
            next_attempt_at=now + policy.cooldown,
        )
        batch.change(parked, "access token rejected by Meta (190); destination breaker open")
        wait_ms = int(policy.cooldown.total_seconds() * 1000)
        batch.redelays.append((delivery, copy, ladder.park_delay(wait_ms)))
        return
    batch.change(change(State.DEAD, reason=reason, detail=said), reason)
