"""gRPC servicer of DispatcherService: attempts, event state, dead letters and their replay."""

from __future__ import annotations

import base64
import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from trackai.dispatcher.v1 import dispatcher_service_pb2 as pb
from trackai.dispatcher.v1 import dispatcher_service_pb2_grpc as pb_grpc
from trackai.matcher.v1 import events_pb2 as matcher_pb
from trackai_dispatcher.service_layer.dlq import (
    DeadLetters,
    NotFoundError,
    NotReplayableError,
    ReplayResult,
)
from trackai_dispatcher.service_layer.ports import DeadFilter, EventStateRow, StateFilter
from trackai_dispatcher.service_layer.queries import PAGE_MAX, Queries, page_size
from trackai_kit.identity import is_event_id

Context = grpc.aio.ServicerContext[Any, Any]

_STATES = {
    "pending": pb.EVENT_STATE_PENDING,
    "sent": pb.EVENT_STATE_SENT,
    "retrying": pb.EVENT_STATE_RETRYING,
    "parked": pb.EVENT_STATE_PARKED,
    "dead": pb.EVENT_STATE_DEAD,
    "expired": pb.EVENT_STATE_EXPIRED,
}
_BREAKER_STATES = {
    "closed": pb.BREAKER_STATE_CLOSED,
    "open": pb.BREAKER_STATE_OPEN,
    "half_open": pb.BREAKER_STATE_HALF_OPEN,
}
_OUTCOMES = {
    "sent": pb.ATTEMPT_OUTCOME_SUCCEEDED,
    "retryable": pb.ATTEMPT_OUTCOME_RETRYABLE,
    "timeout": pb.ATTEMPT_OUTCOME_TIMEOUT,
    "permanent": pb.ATTEMPT_OUTCOME_PERMANENT,
    "invalid": pb.ATTEMPT_OUTCOME_INVALID,
    "breaker_open": pb.ATTEMPT_OUTCOME_BREAKER_OPEN,
}


def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _token(*parts: object) -> str:
    text = "|".join(p.isoformat() if isinstance(p, datetime) else str(p) for p in parts)
    return base64.urlsafe_b64encode(text.encode()).decode()


def _untoken(token: str, count: int) -> list[str] | None:
    if not token:
        return None
    try:
        parts = base64.urlsafe_b64decode(token.encode()).decode().split("|")
    except (ValueError, UnicodeDecodeError):
        parts = []
    if len(parts) != count:
        raise ValueError("page_token is not one this service issued")
    return parts


def _uuid(value: str, field: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(f"{field} must be a UUID") from None


def _bound(message: pb.DeadLetterFilter | pb.ListEventStatesRequest, field: str) -> datetime | None:
    """An optional time bound of a request (``start_time``/``end_time``), None when unset."""
    if not message.HasField(field):  # type: ignore[arg-type]
        return None
    stamp: Timestamp = getattr(message, field)
    return stamp.ToDatetime(UTC)


def _filter(message: pb.DeadLetterFilter) -> DeadFilter:
    return DeadFilter(
        tenant_id=_uuid(message.tenant_id, "filter.tenant_id") if message.tenant_id else None,
        reason=message.reason or None,
        start=_bound(message, "start_time"),
        end=_bound(message, "end_time"),
    )


def _delivery(row: EventStateRow) -> pb.EventDelivery:
    return pb.EventDelivery(
        event_id=row.event_id,
        tenant_id=str(row.tenant_id),
        pixel_id=row.pixel_id,
        event_name=row.event_name,
        state=_STATES[row.state],
        attempts=row.attempts,
        reason=" - ".join(p for p in (row.reason, row.detail) if p),
        next_attempt_time=_ts(row.next_attempt_at),
        update_time=_ts(row.updated_at),
        conversion_id=row.conversion_id or "",
        event_time=_ts(row.event_time),
    )


_STATE_NAMES = {number: name for name, number in _STATES.items()}


def _state_filter(request: pb.ListEventStatesRequest) -> StateFilter:
    """The request as a filter; ValueError names the field at fault."""
    tenant = _uuid(request.tenant_id, "tenant_id")
    if any(s not in _STATE_NAMES for s in request.states):
        raise ValueError("states: unknown state")
    if any(s == matcher_pb.MATCH_STAGE_UNSPECIFIED for s in request.stages):
        raise ValueError("stages: unknown stage")
    after = _untoken(request.page_token, 2)
    if after and not is_event_id(after[1]):
        raise ValueError("page_token is not one this service issued")
    return StateFilter(
        tenant_id=tenant,
        states=tuple(dict.fromkeys(_STATE_NAMES[s] for s in request.states)),
        start=_bound(request, "start_time"),
        end=_bound(request, "end_time"),
        funnel_id=_uuid(request.funnel_id, "funnel_id") if request.funnel_id else None,
        stages=tuple(matcher_pb.MatchStage.Name(s) for s in request.stages),
        after=(datetime.fromisoformat(after[0]), after[1]) if after else None,
        limit=page_size(request.page_size),
    )


class DispatcherServicer(pb_grpc.DispatcherServiceServicer):
    def __init__(self, queries: Queries, dead_letters: DeadLetters) -> None:
        self._queries = queries
        self._dead = dead_letters

    async def ListAttempts(
        self, request: pb.ListAttemptsRequest, context: Context
    ) -> pb.ListAttemptsResponse:
        try:
            tenant = _uuid(request.tenant_id, "tenant_id")
            batch = uuid.UUID(request.batch_id) if request.batch_id else None
            after = _untoken(request.page_token, 3)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        limit = page_size(request.page_size)
        rows = await self._queries.attempts(
            tenant,
            event_id=request.event_id or None,
            batch_id=batch,
            after=(datetime.fromisoformat(after[0]), int(after[1]), after[2]) if after else None,
            limit=limit,
        )
        response = pb.ListAttemptsResponse()
        for row in rows:
            latency = Duration()
            latency.FromMilliseconds(int(row.latency_ms))
            response.attempts.append(
                pb.DispatchAttempt(
                    id=str(row.id),
                    tenant_id=str(row.tenant_id),
                    pixel_id=row.pixel_id,
                    event_id=row.event_id,
                    batch_id=str(row.batch_id),
                    attempt_number=row.attempt_number,
                    outcome=_OUTCOMES.get(row.outcome, pb.ATTEMPT_OUTCOME_UNSPECIFIED),
                    http_status=row.http_status or 0,
                    meta_code=row.meta_code or 0,
                    meta_subcode=row.meta_subcode or 0,
                    fbtrace_id=row.fbtrace_id or "",
                    latency=latency,
                    detail=row.error_message or "",
                    attempt_time=_ts(row.started_at),
                )
            )
        if len(rows) == limit:
            last = rows[-1]
            response.next_page_token = _token(last.started_at, last.id, last.event_id)
        return response

    async def GetEventState(
        self, request: pb.GetEventStateRequest, context: Context
    ) -> pb.GetEventStateResponse:
        try:
            tenant = _uuid(request.tenant_id, "tenant_id")
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        row = None
        if is_event_id(request.event_id):
            row = await self._queries.event_state(tenant, request.event_id)
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"event {request.event_id} not found")
        return pb.GetEventStateResponse(event=_delivery(row))

    async def BatchGetEventStates(
        self, request: pb.BatchGetEventStatesRequest, context: Context
    ) -> pb.BatchGetEventStatesResponse:
        try:
            tenant = _uuid(request.tenant_id, "tenant_id")
            if len(request.event_ids) > PAGE_MAX:
                raise ValueError(f"at most {PAGE_MAX} event_ids")
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        wanted = [e for e in dict.fromkeys(request.event_ids) if is_event_id(e)]
        rows = await self._queries.event_states(tenant, wanted)
        return pb.BatchGetEventStatesResponse(events=[_delivery(row) for row in rows])

    async def ListEventStates(
        self, request: pb.ListEventStatesRequest, context: Context
    ) -> pb.ListEventStatesResponse:
        try:
            where = _state_filter(request)
            # One row more than the page tells whether another page follows.
            rows = await self._queries.list_states(
                dataclasses.replace(where, limit=where.limit + 1)
            )
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        response = pb.ListEventStatesResponse(events=[_delivery(r) for r in rows[: where.limit]])
        if len(rows) > where.limit:
            last = rows[where.limit - 1]
            response.next_page_token = _token(last.event_time, last.event_id)
        return response

    async def ListDeadLetters(
        self, request: pb.ListDeadLettersRequest, context: Context
    ) -> pb.ListDeadLettersResponse:
        try:
            where = _filter(request.filter)
            after = _untoken(request.page_token, 2)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        limit = page_size(request.page_size)
        rows = await self._queries.dead_letters(
            where, (datetime.fromisoformat(after[0]), after[1]) if after else None, limit
        )
        response = pb.ListDeadLettersResponse()
        for row, replayable in rows:
            response.dead_letters.append(
                pb.DeadLetter(
                    event_id=row.event_id,
                    tenant_id=str(row.tenant_id),
                    pixel_id=row.pixel_id,
                    event_name=row.event_name,
                    reason=row.reason or "",
                    detail=row.detail or "",
                    meta_code=row.last_code or 0,
                    meta_subcode=row.last_subcode or 0,
                    attempts=row.attempts,
                    event_time=_ts(row.event_time),
                    dead_time=_ts(row.updated_at),
                    replayable=replayable,
                )
            )
        if len(rows) == limit:
            last_dead = rows[-1][0]
            response.next_page_token = _token(last_dead.updated_at, last_dead.event_id)
        return response

    async def ReplayDeadLetters(
        self, request: pb.ReplayDeadLettersRequest, context: Context
    ) -> pb.ReplayDeadLettersResponse:
        requested_by = request.requested_by.strip()
        if not requested_by or len(requested_by) > 200:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "requested_by (who replays) is required"
            )
        note = request.note[:500]
        selector = request.WhichOneof("selector")
        try:
            result: ReplayResult
            if selector == "event_id":
                if not is_event_id(request.event_id):
                    raise NotFoundError(f"event {request.event_id} not found")
                result = await self._dead.replay_one(request.event_id, requested_by, note)
            elif selector == "filter":
                where = _filter(request.filter)
                if where == DeadFilter():
                    raise ValueError("an empty filter replays everything: send all = true")
                result = await self._dead.replay_matching(
                    where, requested_by, note, everything=False
                )
            elif selector == "all" and request.all:
                result = await self._dead.replay_matching(
                    DeadFilter(), requested_by, note, everything=True
                )
            else:
                raise ValueError("give exactly one selector: event_id, filter or all = true")
        except NotFoundError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except NotReplayableError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return pb.ReplayDeadLettersResponse(
            replay_id=str(result.replay_id),
            replayed=result.replayed,
            skipped_already_sent=result.skipped_sent,
            expired=result.skipped_expired,
            selected=result.selected,
        )

    async def ListDestinationHealth(
        self, request: pb.ListDestinationHealthRequest, context: Context
    ) -> pb.ListDestinationHealthResponse:
        try:
            tenant = _uuid(request.tenant_id, "tenant_id") if request.tenant_id else None
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        rows = await self._queries.destination_health(tenant)
        return pb.ListDestinationHealthResponse(
            destinations=[
                pb.DestinationHealth(
                    tenant_id=str(row.tenant_id),
                    pixel_id=row.pixel_id,
                    breaker_state=_BREAKER_STATES[row.state],
                    consecutive_failures=row.consecutive_failures,
                    last_code=row.last_code or 0,
                    last_subcode=row.last_subcode or 0,
                    reason=row.reason or "",
                    opened_time=_ts(row.opened_at),
                    probe_time=_ts(row.probe_after),
                    dead_letters=row.dead_letters,
                )
                for row in rows
            ]
        )

    async def GetParameterCoverage(
        self, request: pb.GetParameterCoverageRequest, context: Context
    ) -> pb.GetParameterCoverageResponse:
        try:
            tenant = _uuid(request.tenant_id, "tenant_id")
            if not (request.HasField("start_time") and request.HasField("end_time")):
                raise ValueError("start_time and end_time are required")
            start = request.start_time.ToDatetime(UTC)
            end = request.end_time.ToDatetime(UTC)
            if start >= end:
                raise ValueError("start_time must be before end_time")
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        events, carried = await self._queries.parameter_coverage(tenant, start, end)
        return pb.GetParameterCoverageResponse(
            events=events,
            parameters=[
                pb.ParameterCoverage(parameter=key, events=count)
                for key, count in sorted(carried.items())
            ],
        )
