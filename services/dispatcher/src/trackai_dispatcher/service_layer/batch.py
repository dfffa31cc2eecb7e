"""One batch's working state between its two transactions, and what each message comes to."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field

from trackai_dispatcher.domain.classification import MetaAnswer, Verdict
from trackai_dispatcher.domain.model import Destination, State
from trackai_dispatcher.service_layer.metrics import EVENTS
from trackai_dispatcher.service_layer.ports import AttemptRecord, Change, Delivery, NewDispatch

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


@dataclass
class Outcome:
    verdict: Verdict
    answer: MetaAnswer


@dataclass
class Batch:
    """Working state of one batch between its two transactions."""

    id: uuid.UUID
    destination: Destination
    changes: list[Change] = field(default_factory=list)
    redelays: list[tuple[Delivery, int, int]] = field(default_factory=list)
    attempts: list[AttemptRecord] = field(default_factory=list)
    statuses: list[tuple[str, State, str]] = field(default_factory=list)
    posts: dict[str, int] = field(default_factory=dict)
    results: dict[str, Outcome] = field(default_factory=dict)
    verdicts: list[MetaAnswer] = field(default_factory=list)
    handed_back: set[str] = field(default_factory=set)
    #: Funnels without usable credentials for a known reason (the registry refused the
    #: dispatcher, or cannot decrypt the token): the dead letter's detail.
    unusable: dict[str, str] = field(default_factory=dict)
    #: A half-open breaker's probe: Meta may still be down, which is not the events' fault.
    probe: bool = False

    def change(self, change: Change, status_detail: str = "") -> None:
        self.changes.append(change)
        if change.state in (State.SENT, State.DEAD, State.PARKED, State.EXPIRED):
            self.statuses.append((change.event_id, change.state, status_detail))
        if change.state is not None:
            EVENTS.add(1, {"state": change.state.value, "reason": change.reason or ""})


def detail(answer: MetaAnswer) -> str:
    if answer.http_status is None:
        return f"no answer: {answer.message}"
    code = f"{answer.code}/{answer.subcode}" if answer.subcode else f"{answer.code}"
    return f"HTTP {answer.http_status}, code {code}: {answer.message or ''}".strip()


def new_dispatch(delivery: Delivery) -> NewDispatch:
    conversion = delivery.conversion
    return NewDispatch(
        event_id=delivery.event_id,
        tenant_id=conversion.tenant_id,
        pixel_id=conversion.pixel_id,
        funnel_id=conversion.funnel_id,
        conversion_id=conversion.conversion_id,
        event_name=conversion.event.event_name,
        event_time=conversion.event.event_time,
        payload=conversion.payload,
        match_stage=conversion.match_stage,
        match_score=conversion.match_score,
        emq=conversion.emq,
    )
