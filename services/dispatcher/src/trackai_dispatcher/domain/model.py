"""Delivery vocabulary: event states, dead-letter reasons, the retry ladder and what one batch
attempt yields for each event."""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: Meta refuses events older than this (code 100, subcode 2804003).
META_MAX_AGE_S = 7 * 24 * 3600
#: Kept off the limit so an event is not sent in its last seconds and refused on arrival.
EXPIRY_MARGIN_S = 60
#: Meta's cap on events per request.
META_MAX_BATCH = 1000


class State(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    RETRYING = "retrying"
    PARKED = "parked"
    DEAD = "dead"
    EXPIRED = "expired"


#: States in which a copy of the message may still be delivered.
UNDELIVERED = (State.PENDING, State.RETRYING, State.PARKED)


class Reason(enum.StrEnum):
    """Stable machine reasons of dead or expired events (the DLQ filters on them)."""

    INVALID_EVENT = "invalid_event"
    META_REJECTED = "meta_rejected"
    META_PERMANENT = "meta_permanent"
    #: Not a dead-letter reason: why a destination's events are parked (token refused).
    META_TOKEN = "meta_token"  # noqa: S105 - a reason name, not a secret
    RETRIES_EXHAUSTED = "retries_exhausted"
    EVENT_TOO_OLD = "event_too_old"
    NO_DESTINATION = "no_destination"


class AttemptOutcome(enum.StrEnum):
    """`dispatch_attempts.outcome`: what one POST (or its refusal to happen) came to."""

    SENT = "sent"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"
    TIMEOUT = "timeout"
    INVALID = "invalid"
    BREAKER_OPEN = "breaker_open"


@dataclass(frozen=True)
class Destination:
    """A circuit breaker's scope: one tenant's pixel."""

    tenant_id: str
    pixel_id: str

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.pixel_id}"


@dataclass(frozen=True)
class RetryLadder:
    """Delays between attempts; after the last one the event is dead."""

    delays_ms: tuple[int, ...]
    #: Longer delay queues only parked events use (the breaker's cool-down), so an event parked
    #: behind an open breaker comes back at its probe time rather than every few seconds.
    park_delays_ms: tuple[int, ...] = ()

    def delay_for(self, retry_step: int) -> int | None:
        """Delay before retry number ``retry_step + 1``; None when the ladder is used up."""
        if retry_step < len(self.delays_ms):
            return self.delays_ms[retry_step]
        return None

    def park_delay(self, wait_ms: int) -> int:
        """The delay queue that brings a parked event back soonest after ``wait_ms``.

        The longest delay not beyond the wait (parked events re-check and re-park, so coming back
        early is harmless), or the shortest when the wait is shorter than every delay.
        """
        delays = self.delays_ms + self.park_delays_ms
        fitting = [d for d in delays if d <= wait_ms]
        return max(fitting) if fitting else min(delays)


def is_expired(event_time: int, now: float) -> bool:
    """True when Meta would refuse the event as too old (with a margin for the trip)."""
    return now - event_time > META_MAX_AGE_S - EXPIRY_MARGIN_S
