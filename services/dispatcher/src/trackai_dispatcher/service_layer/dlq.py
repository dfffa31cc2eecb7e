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
from typing import Protocol

import asyncpg
from google.protobuf.json_format import ParseDict

from trackai.matcher.v1 import events_pb2 as matcher_pb
from trackai_dispatcher.adapters import records
from trackai_dispatcher.adapters.records import DeadFilter
from trackai_dispatcher.adapters.repository import Conn
from trackai_dispatcher.domain.model import State, is_expired
from trackai_dispatcher.service_layer.delivery import TOO_OLD_DETAIL
from trackai_kit.logging import get_logger

log = get_logger(__name__)

#: Events replayed per transaction (a replay of everything is many short transactions).
CHUNK = 500


class NotFoundError(LookupError):
    pass


class NotReplayableError(ValueError):
    """The event exists but is neither dead nor sent (still being delivered, or expired)."""


class Replayer(Protocol):
    async def replay(self, request: matcher_pb.DispatchRequest, copy: int) -> None: ...


@dataclass(frozen=True)
class ReplayResult:
    replay_id: uuid.UUID
    selected: int
    replayed: int
    skipped_sent: int
    skipped_expired: int


def rebuild_request(row: asyncpg.Record) -> matcher_pb.DispatchRequest:
    """The DispatchRequest a stored event came in (a new message id: it is a new message)."""
    request = matcher_pb.DispatchRequest(
        message_id=uuid.uuid4().hex,
        tenant_id=str(row["tenant_id"]),
        funnel_id=row["funnel_id"] or "",
        pixel_id=row["pixel_id"],
        conversion_id=row["conversion_id"] or "",
        match_score=row["match_score"] or 0.0,
        emq=float(row["emq"] or 0),
    )
    ParseDict(row["payload"], request.event)
    if row["match_stage"]:
        request.match_stage = matcher_pb.MatchStage.Value(row["match_stage"])
    return request


class DeadLetters:
    def __init__(
        self,
        pool: asyncpg.Pool,
        replayer: Replayer,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._replayer = replayer
        self._clock = clock

    async def replay_one(self, event_id: str, requested_by: str, note: str) -> ReplayResult:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await records.lock_one(conn, event_id)
            if row is None:
                raise NotFoundError(f"event {event_id} is not known to the dispatcher")
            state = State(row["state"])
            if state not in (State.DEAD, State.SENT):
                raise NotReplayableError(f"event {event_id} is {state.value}, not dead")
            replay_id, _ = await records.start_replay(
                conn, requested_by, "one", DeadFilter(tenant_id=str(row["tenant_id"])), note
            )
            outcomes = await self._replay_rows(conn, [row])
            await records.record_items(conn, replay_id, outcomes)
            return _result(replay_id, await records.finish_replay(conn, replay_id))

    async def replay_matching(
        self, where: DeadFilter, requested_by: str, note: str, *, everything: bool
    ) -> ReplayResult:
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                replay_id, began = await records.start_replay(
                    conn, requested_by, "all" if everything else "filter", where, note
                )
            while True:
                async with conn.transaction():
                    rows = await records.lock_dead_chunk(conn, where, began, CHUNK)
                    if not rows:
                        break
                    outcomes = await self._replay_rows(conn, rows)
                    await records.record_items(conn, replay_id, outcomes)
            async with conn.transaction():
                result = _result(replay_id, await records.finish_replay(conn, replay_id))
        log.info(
            "dead letters replayed",
            replay_id=str(replay_id),
            requested_by=requested_by,
            selected=result.selected,
            replayed=result.replayed,
            expired=result.skipped_expired,
        )
        return result

    async def _replay_rows(self, conn: Conn, rows: list[asyncpg.Record]) -> dict[str, str]:
        now = self._clock().timestamp()
        outcomes: dict[str, str] = {}
        replay: list[asyncpg.Record] = []
        for row in rows:
            if row["state"] == State.SENT:
                outcomes[row["event_id"]] = "skipped_sent"
            elif is_expired(int(row["event_time"].timestamp()), now):
                outcomes[row["event_id"]] = "skipped_expired"
            else:
                outcomes[row["event_id"]] = "replayed"
                replay.append(row)
        expired = [e for e, outcome in outcomes.items() if outcome == "skipped_expired"]
        await records.mark_expired(conn, expired, TOO_OLD_DETAIL)
        await records.requeue_for_replay(conn, [r["event_id"] for r in replay])
        # Published before the commit: a crash leaves the event dead (replay again) or the copy
        # on its way, never an event marked pending with no message.
        await asyncio.gather(
            *(self._replayer.replay(rebuild_request(r), r["attempts"]) for r in replay)
        )
        return outcomes


def _result(replay_id: uuid.UUID, row: asyncpg.Record) -> ReplayResult:
    return ReplayResult(
        replay_id,
        row["selected"],
        row["replayed"],
        row["skipped_sent"],
        row["skipped_expired"],
    )
