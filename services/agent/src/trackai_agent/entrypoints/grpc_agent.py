"""gRPC servicer of AgentService: decode, call the conversation use case, encode."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from trackai.agent.v1 import agent_service_pb2 as pb
from trackai.agent.v1 import agent_service_pb2_grpc as pb_grpc
from trackai_agent.domain.model import Entry, Escalation, SessionRecord
from trackai_agent.service_layer.conversation import (
    Conversation,
    SessionClosed,
    SessionNotFound,
)
from trackai_agent.service_layer.ports import SessionStore
from trackai_agent.service_layer.tools import SetupTools

T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]
_STATES = {
    "active": pb.SESSION_STATUS_ACTIVE,
    "escalated": pb.SESSION_STATUS_ESCALATED,
    "closed": pb.SESSION_STATUS_CLOSED,
}
_ROLES = {
    "user": pb.ROLE_USER,
    "assistant": pb.ROLE_ASSISTANT,
    "tool": pb.ROLE_TOOL,
    "operator": pb.ROLE_OPERATOR,
}
_ESCALATION_STATES = ("", "open", "acknowledged", "resolved")
#: Tools RunCheck may run: the read-only ones (a test event goes through the conversation).
CHECKS = frozenset(
    {
        "validate_meta_token",
        "validate_gateway_webhook",
        "probe_landing_url",
        "check_pixel_presence",
        "generate_tracking_snippet",
    }
)


def _time(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def session_pb(session: SessionRecord) -> pb.Session:
    return pb.Session(
        id=session.id,
        tenant_id=session.tenant_id,
        status=_STATES.get(session.state, pb.SESSION_STATUS_UNSPECIFIED),
        create_time=_time(session.created_at),
        consecutive_failures=session.consecutive_failures,
        funnel_slug=session.funnel_slug,
        step=session.step,
        setup_locked=not session.webhook_verified,
        prompt_tokens=session.prompt_tokens,
        completion_tokens=session.completion_tokens,
    )


def entry_pb(entry: Entry) -> pb.TranscriptEntry:
    return pb.TranscriptEntry(
        role=_ROLES.get(entry.role, pb.ROLE_UNSPECIFIED),
        content=entry.content,
        tool_name=entry.tool_name or "",
        tool_succeeded=entry.role == "tool" and entry.outcome != "error",
        create_time=_time(entry.created_at),
        seq=entry.seq,
        tool_status=entry.outcome or "" if entry.role == "tool" else "",
        tool_arguments_json=json.dumps(entry.tool_arguments) if entry.tool_arguments else "",
        tool_result_json=json.dumps(entry.tool_result) if entry.tool_result else "",
        duration_ms=entry.duration_ms or 0.0,
        prompt_tokens=entry.prompt_tokens,
        completion_tokens=entry.completion_tokens,
        event_id=entry.event_id or "",
    )


def escalation_pb(escalation: Escalation) -> pb.Escalation:
    return pb.Escalation(
        id=escalation.id,
        session_id=escalation.session_id,
        tenant_id=escalation.tenant_id,
        step=escalation.step,
        reason=escalation.reason,
        failure_count=escalation.failure_count,
        state=escalation.state,
        summary_json=json.dumps(escalation.summary, ensure_ascii=False),
        transcript_url=escalation.transcript_url,
        acknowledged_by=escalation.acknowledged_by or "",
        create_time=_time(escalation.created_at),
    )


def export_json(session: SessionRecord, entries: Sequence[Entry]) -> str:
    def plain(entry: Entry) -> dict[str, Any]:
        values = dict(entry.__dict__)
        values["created_at"] = entry.created_at.isoformat() if entry.created_at else None
        return values

    return json.dumps(
        {
            "session": {
                **session.__dict__,
                "setup_started_at": session.setup_started_at.isoformat(),
                "created_at": session.created_at.isoformat() if session.created_at else None,
            },
            "entries": [plain(e) for e in entries],
        },
        ensure_ascii=False,
    )


async def _call(context: Context, action: Callable[[], Awaitable[T]]) -> T:
    try:
        return await action()
    except SessionNotFound:
        await context.abort(grpc.StatusCode.NOT_FOUND, "session not found for this tenant")
    except SessionClosed:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the session is closed")
    raise AssertionError("unreachable")


async def _ids(context: Context, *values: str) -> None:
    for value in values:
        try:
            uuid.UUID(value)
        except ValueError:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"{value!r} is not a UUID (tenant/session id)"
            )


async def _operator_request(context: Context, session_id: str, operator: str) -> None:
    await _ids(context, session_id)
    if not operator:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "operator is required")


#: Escalations per ListEscalations page: the default and the cap.
ESCALATIONS_PAGE = 50
ESCALATIONS_PAGE_MAX = 200


def _escalation_cursor(token: str) -> tuple[datetime, str] | None:
    """``<created_at ISO>|<id>`` of the last escalation of the previous page."""
    if not token:
        return None
    when, _, key = token.partition("|")
    return datetime.fromisoformat(when), str(uuid.UUID(key))


class AgentServicer(pb_grpc.AgentServiceServicer):
    def __init__(self, conversation: Conversation, store: SessionStore, tools: SetupTools) -> None:
        self._conversation = conversation
        self._store = store
        self._tools = tools

    async def StartSession(
        self, request: pb.StartSessionRequest, context: Context
    ) -> pb.StartSessionResponse:
        await _ids(context, request.tenant_id)
        if not request.started_by:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "started_by is required")
        outcome = await self._conversation.start(
            request.tenant_id, request.funnel_slug, request.started_by
        )
        return pb.StartSessionResponse(
            session=session_pb(outcome.session), entries=[entry_pb(e) for e in outcome.entries]
        )

    async def SendMessage(
        self, request: pb.SendMessageRequest, context: Context
    ) -> pb.SendMessageResponse:
        await _ids(context, request.tenant_id, request.session_id)
        if not request.content.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "content is empty")
        outcome = await _call(
            context,
            lambda: self._conversation.send(request.tenant_id, request.session_id, request.content),
        )
        return pb.SendMessageResponse(
            session=session_pb(outcome.session), entries=[entry_pb(e) for e in outcome.entries]
        )

    async def StreamMessage(
        self, request: pb.StreamMessageRequest, context: Context
    ) -> AsyncIterator[pb.StreamMessageResponse]:
        await _ids(context, request.tenant_id, request.session_id)
        if not request.content.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "content is empty")
        # Entries and text deltas in the order they were produced.
        produced: asyncio.Queue[Entry | str] = asyncio.Queue()
        turn = asyncio.ensure_future(
            self._conversation.send(
                request.tenant_id, request.session_id, request.content, produced.put, produced.put
            )
        )
        try:
            while not (turn.done() and produced.empty()):
                waiter = asyncio.ensure_future(produced.get())
                await asyncio.wait({waiter, turn}, return_when=asyncio.FIRST_COMPLETED)
                if waiter.done():
                    item = waiter.result()
                    if isinstance(item, str):
                        yield pb.StreamMessageResponse(delta=item)
                    else:
                        yield pb.StreamMessageResponse(entry=entry_pb(item))
                else:
                    waiter.cancel()
            outcome = await _call(context, lambda: turn)
        finally:
            # A client that went away does not stop the turn: it is stored all the same.
            if not turn.done():
                await asyncio.shield(turn)
        yield pb.StreamMessageResponse(session=session_pb(outcome.session))

    async def GetCurrentSession(
        self, request: pb.GetCurrentSessionRequest, context: Context
    ) -> pb.GetCurrentSessionResponse:
        await _ids(context, request.tenant_id)
        session, entries = await _call(
            context, lambda: self._conversation.current(request.tenant_id, request.funnel_slug)
        )
        return pb.GetCurrentSessionResponse(
            session=session_pb(session), entries=[entry_pb(e) for e in entries]
        )

    async def RequestHuman(
        self, request: pb.RequestHumanRequest, context: Context
    ) -> pb.RequestHumanResponse:
        await _ids(context, request.tenant_id, request.session_id)
        outcome = await _call(
            context,
            lambda: self._conversation.request_human(request.tenant_id, request.session_id),
        )
        return pb.RequestHumanResponse(
            session=session_pb(outcome.session),
            escalation=escalation_pb(outcome.escalation) if outcome.escalation else None,
            entries=[entry_pb(e) for e in outcome.entries],
        )

    async def GetTranscript(
        self, request: pb.GetTranscriptRequest, context: Context
    ) -> pb.GetTranscriptResponse:
        await _ids(context, request.tenant_id, request.session_id)
        session, entries = await _call(
            context,
            lambda: self._conversation.transcript(request.tenant_id, request.session_id),
        )
        return pb.GetTranscriptResponse(
            session=session_pb(session), entries=[entry_pb(e) for e in entries]
        )

    async def ExportTranscript(
        self, request: pb.ExportTranscriptRequest, context: Context
    ) -> pb.ExportTranscriptResponse:
        await _ids(context, request.tenant_id, request.session_id)
        session, entries = await _call(
            context,
            lambda: self._conversation.transcript(request.tenant_id, request.session_id),
        )
        return pb.ExportTranscriptResponse(json=export_json(session, entries))

    async def ListEscalations(
        self, request: pb.ListEscalationsRequest, context: Context
    ) -> pb.ListEscalationsResponse:
        if request.state not in _ESCALATION_STATES:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"state must be one of open, acknowledged, resolved (got {request.state!r})",
            )
        try:
            after = _escalation_cursor(request.page_token)
        except ValueError:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "page_token is not one this service issued"
            )
        size = min(request.page_size or ESCALATIONS_PAGE, ESCALATIONS_PAGE_MAX)
        found = await self._store.escalations(request.state, after=after, limit=size + 1)
        page = found[:size]
        token = ""
        if len(found) > size and page[-1].created_at is not None:
            token = f"{page[-1].created_at.isoformat()}|{page[-1].id}"
        return pb.ListEscalationsResponse(
            escalations=[escalation_pb(e) for e in page], next_page_token=token
        )

    async def TakeOverSession(
        self, request: pb.TakeOverSessionRequest, context: Context
    ) -> pb.TakeOverSessionResponse:
        await _operator_request(context, request.session_id, request.operator)
        taken = await self._store.take_over(request.session_id, request.operator)
        if taken is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "the session has no open escalation"
            )
        assert taken is not None
        return pb.TakeOverSessionResponse(escalation=escalation_pb(taken))

    async def ResumeSession(
        self, request: pb.ResumeSessionRequest, context: Context
    ) -> pb.ResumeSessionResponse:
        await _operator_request(context, request.session_id, request.operator)
        try:
            session = await self._store.resume(request.session_id, request.operator)
        except LookupError:
            await context.abort(grpc.StatusCode.NOT_FOUND, "session not found")
        if session is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the session is not escalated")
        assert session is not None
        return pb.ResumeSessionResponse(session=session_pb(session))

    async def PostOperatorMessage(
        self, request: pb.PostOperatorMessageRequest, context: Context
    ) -> pb.PostOperatorMessageResponse:
        await _operator_request(context, request.session_id, request.operator)
        if not request.content.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "content is empty")
        try:
            entry = await self._store.post_operator_message(
                request.session_id, request.operator, request.content.strip()
            )
        except LookupError:
            await context.abort(grpc.StatusCode.NOT_FOUND, "session not found")
        if entry is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "the session is not escalated, or no operator took it over",
            )
        assert entry is not None
        return pb.PostOperatorMessageResponse(entry=entry_pb(entry))

    async def RunCheck(self, request: pb.RunCheckRequest, context: Context) -> pb.RunCheckResponse:
        await _ids(context, request.tenant_id)
        if request.tool not in CHECKS:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"tool must be one of {', '.join(sorted(CHECKS))} (got {request.tool!r})",
            )
        try:
            arguments = json.loads(request.arguments_json) if request.arguments_json else {}
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "arguments_json is not an object")
        assert isinstance(arguments, dict)
        since = (
            request.setup_start_time.ToDatetime(tzinfo=UTC)
            if request.HasField("setup_start_time")
            else datetime.now(UTC)
        )
        run = await self._tools.run(
            request.tool, request.tenant_id, request.funnel_slug, arguments, since
        )
        return pb.RunCheckResponse(
            status=run.result.status,
            message=run.result.message,
            action=run.result.action,
            details_json=json.dumps(run.result.details, ensure_ascii=False, default=str),
            duration_ms=run.duration_ms,
        )
