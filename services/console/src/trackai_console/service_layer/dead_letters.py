"""DLQ page use cases: a tenant's dead events, and their replay (one, a selection, or all that
match the filter), recorded upstream with who asked for it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from trackai_console.domain.accounts import User
from trackai_console.domain.dead_letters import ReplayOutcome
from trackai_console.service_layer.ports import DeadLetterPage, DeadLetterQueue

PERIOD_DAYS = {"7d": 7, "30d": 30}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def requested_by(user: User) -> str:
    """Who replayed, as the dispatcher records it: the console account's id (no e-mail: the
    console stores it only as a hash; `trackai user list` maps ids to roles and tenants)."""
    return f"console:{user.id}"


class DeadLetters:
    def __init__(self, queue: DeadLetterQueue, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._queue = queue
        self._clock = clock

    def _since(self, period: str) -> datetime | None:
        days = PERIOD_DAYS.get(period)
        return self._clock() - timedelta(days=days) if days else None

    async def page(
        self, tenant_id: str, *, reason: str, period: str, page_token: str = ""
    ) -> DeadLetterPage:
        return await self._queue.dead_letters(
            tenant_id, reason=reason, since=self._since(period), page_token=page_token
        )

    async def replay(self, tenant_id: str, user: User, event_ids: Sequence[str]) -> ReplayOutcome:
        """Replay the chosen events; ids that are not this tenant's count as not found."""
        outcome = ReplayOutcome()
        for event_id in dict.fromkeys(event_ids):
            if not await self._queue.owns(tenant_id, event_id):
                outcome.selected += 1
                outcome.refused.append(event_id)
                continue
            outcome.add(await self._queue.replay_event(event_id, requested_by(user)))
        return outcome

    async def replay_matching(
        self, tenant_id: str, user: User, *, reason: str, period: str
    ) -> ReplayOutcome:
        """Everything dead of this tenant that matches the page's filter."""
        return await self._queue.replay_matching(
            tenant_id, reason=reason, since=self._since(period), requested_by=requested_by(user)
        )
