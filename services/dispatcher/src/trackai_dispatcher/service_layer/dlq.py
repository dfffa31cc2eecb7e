"""Dead-letter replay: put dead events back on ``capi-dispatch`` with a fresh retry ladder.

The DLQ is the ``dispatches`` table (state ``dead``, with its reason and the full event), not the
``capi-dispatch.dlq`` queue, which only receives messages that can never be delivered (not a
DispatchRequest, no valid event id). Replay is idempotent: a sent event is never sent again, an
event already replayed is no longer dead, and events past Meta's 7-day limit become expired.
Every replay and each event's outcome are recorded in ``dlq_replays`` / ``dlq_replay_items``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from trackai_dispatcher.domain.model import State, is_expired
from trackai_dispatcher.service_layer.batch import TOO_OLD_DETAIL
from trackai_dispatcher.service_layer.ports import (
    DeadFilter,
    DeadLetterStore,
    ReplayCounts,
    Replayer,
    ReplaySession,
    StoredDispatch,
)
from trackai_kit.logging import get_logger

log = get_logger(__name__)

#: Events replayed per transaction (a replay of everything is many short transactions).
CHUNK = 500

SKIPPED_SENT = "skipped_sent"
SKIPPED_EXPIRED = "skipped_expired"
REPLAYED = "replayed"


class NotFoundError(LookupError):
    pass


class NotReplayableError(ValueError):
    """The event exists but is neither dead nor sent (still being delivered, or expired)."""


@dataclass(frozen=True)
class ReplayResult:
    replay_id: uuid.UUID
    selected: int
    replayed: int
    skipped_sent: int
    skipped_expired: int


def replay_outcome(stored: StoredDispatch, now: float) -> str:
    """What a replay does with one selected event: never send a sent event again, and never
    send one Meta would refuse as too old."""
    if stored.state == State.SENT:
        return SKIPPED_SENT
    if is_expired(int(stored.event_time.timestamp()), now):
        return SKIPPED_EXPIRED
    return REPLAYED


class DeadLetters:
    def __init__(
        self,
        store: DeadLetterStore,
        replayer: Replayer,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._replayer = replayer
        self._clock = clock

    async def replay_one(self, event_id: str, requested_by: str, note: str) -> ReplayResult:
        async with self._store.session() as session, session.transaction():
            stored = await session.lock_one(event_id)
            if stored is None:
                raise NotFoundError(f"event {event_id} is not known to the dispatcher")
            if stored.state not in (State.DEAD, State.SENT):
                raise NotReplayableError(f"event {event_id} is {stored.state.value}, not dead")
            replay_id, _ = await session.start_replay(
                requested_by, "one", DeadFilter(tenant_id=stored.tenant_id), note
            )
            outcomes = await self._replay_rows(session, [stored])
            await session.record_items(replay_id, outcomes)
            return _result(replay_id, await session.finish_replay(replay_id))

    async def replay_matching(
        self, where: DeadFilter, requested_by: str, note: str, *, everything: bool
    ) -> ReplayResult:
        async with self._store.session() as session:
            async with session.transaction():
                replay_id, began = await session.start_replay(
                    requested_by, "all" if everything else "filter", where, note
                )
            while True:
                async with session.transaction():
                    rows = await session.lock_dead_chunk(where, began, CHUNK)
                    if not rows:
                        break
                    outcomes = await self._replay_rows(session, rows)
                    await session.record_items(replay_id, outcomes)
            async with session.transaction():
                result = _result(replay_id, await session.finish_replay(replay_id))
        log.info(
            "dead letters replayed",
            replay_id=str(replay_id),
            requested_by=requested_by,
            selected=result.selected,
            replayed=result.replayed,
            expired=result.skipped_expired,
        )
        return result

    async def _replay_rows(
        self, session: ReplaySession, rows: list[StoredDispatch]
    ) -> dict[str, str]:
        now = self._clock().timestamp()
        outcomes = {row.event_id: replay_outcome(row, now) for row in rows}
        replay = [row for row in rows if outcomes[row.event_id] == REPLAYED]
        expired = [e for e, outcome in outcomes.items() if outcome == SKIPPED_EXPIRED]
        await session.mark_expired(expired, TOO_OLD_DETAIL)
        await session.requeue_for_replay([r.event_id for r in replay])
        # Published before the commit: a crash leaves the event dead (replay again) or the copy
        # on its way, never an event marked pending with no message.
        await asyncio.gather(*(self._replayer.replay(r, r.attempts) for r in replay))
        return outcomes


def _result(replay_id: uuid.UUID, counts: ReplayCounts) -> ReplayResult:
    return ReplayResult(
        replay_id, counts.selected, counts.replayed, counts.skipped_sent, counts.skipped_expired
    )
