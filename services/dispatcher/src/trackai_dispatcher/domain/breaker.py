"""Circuit breaker of one destination: closed → open after N consecutive failures (at once on a
token error) → half-open probe after a cool-down → closed on success, open again on failure.

Pure state transitions; the repository stores the state in ``breaker_states`` so every replica
sees the same breaker.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from trackai_dispatcher.domain.classification import Verdict


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Gate(enum.Enum):
    """What a batch may do now."""

    SEND = "send"
    #: The breaker is open but its cool-down is over: this batch is the probe.
    PROBE = "probe"
    PARK = "park"


class Transition(enum.Enum):
    OPENED = "opened"
    REOPENED = "reopened"
    CLOSED = "closed"


@dataclass(frozen=True)
class Breaker:
    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    opened_at: datetime | None = None
    probe_after: datetime | None = None
    last_code: int | None = None
    last_subcode: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class BreakerPolicy:
    threshold: int
    cooldown: timedelta
    #: How long a probe holds the half-open breaker before another replica may probe instead.
    probe_lease: timedelta

    def admit(self, breaker: Breaker, now: datetime) -> tuple[Gate, Breaker]:
        if breaker.state is BreakerState.CLOSED:
            return Gate.SEND, breaker
        if breaker.probe_after is not None and breaker.probe_after > now:
            return Gate.PARK, breaker
        return Gate.PROBE, replace(
            breaker, state=BreakerState.HALF_OPEN, probe_after=now + self.probe_lease
        )

    def record(
        self,
        breaker: Breaker,
        verdict: Verdict,
        now: datetime,
        *,
        code: int | None = None,
        subcode: int | None = None,
        reason: str | None = None,
    ) -> tuple[Breaker, Transition | None]:
        if not verdict.breaker_failure:
            # Meta answered for this destination (a refused payload proves it reachable too).
            was_closed = breaker.state is BreakerState.CLOSED
            if was_closed and breaker.consecutive_failures == 0:
                return breaker, None
            return Breaker(), None if was_closed else Transition.CLOSED
        failures = breaker.consecutive_failures + 1
        failed = replace(
            breaker,
            consecutive_failures=failures,
            last_code=code,
            last_subcode=subcode,
            reason=reason,
        )
        if breaker.state is BreakerState.HALF_OPEN or (
            breaker.state is BreakerState.OPEN and verdict is Verdict.TOKEN
        ):
            return self._open(failed, now), Transition.REOPENED
        if breaker.state is BreakerState.OPEN:
            return failed, None
        if verdict is Verdict.TOKEN or failures >= self.threshold:
            return self._open(failed, now), Transition.OPENED
        return failed, None

    def _open(self, breaker: Breaker, now: datetime) -> Breaker:
        return replace(
            breaker, state=BreakerState.OPEN, opened_at=now, probe_after=now + self.cooldown
        )
