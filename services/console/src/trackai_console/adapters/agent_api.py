"""The agent's AgentService as the console's AssistantApi. NOT_FOUND and INVALID_ARGUMENT (a
malformed id) read as "no such conversation"; FAILED_PRECONDITION as closed or not escalated;
UNAVAILABLE and deadlines as SourceUnavailable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from trackai.agent.v1 import agent_service_pb2 as pb
from trackai.agent.v1 import agent_service_pb2_grpc as pb_grpc
from trackai_console.adapters.read_apis import answered, to_datetime
from trackai_console.domain.assistant import (
    ChatEntry,
    ChatSession,
    Conversation,
    ConversationClosed,
    Delta,
    EscalationPage,
    NoConversation,
    NotEscalated,
    QueuedEscalation,
    TurnEvent,
)
from trackai_console.service_layer.ports import SourceUnavailable

if TYPE_CHECKING:
    from trackai.agent.v1.agent_service_pb2_grpc import AgentServiceAsyncStub

_ROLES = {
    pb.ROLE_USER: "user",
    pb.ROLE_ASSISTANT: "assistant",
    pb.ROLE_TOOL: "tool",
    pb.ROLE_OPERATOR: "operator",
}
_STATES = {
    pb.SESSION_STATUS_ACTIVE: "active",
    pb.SESSION_STATUS_ESCALATED: "escalated",
    pb.SESSION_STATUS_CLOSED: "closed",
}
T = TypeVar("T")
_ABSENT = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
_DOWN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def _object(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def entry(message: pb.TranscriptEntry) -> ChatEntry:
    role = _ROLES.get(message.role, "assistant")
    result = _object(message.tool_result_json) if role == "tool" else {}
    details = result.get("details")
    calls = _object(message.tool_arguments_json).get("tool_calls") if role == "assistant" else None
    return ChatEntry(
        role=role,
        content=message.content,
        seq=message.seq,
        created_at=to_datetime(message.create_time) if message.HasField("create_time") else None,
        tool_name=message.tool_name,
        status=message.tool_status,
        message=str(result.get("message") or ""),
        action=str(result.get("action") or ""),
        details=details if isinstance(details, dict) else {},
        calls_only=bool(calls),
    )


def session(message: pb.Session) -> ChatSession:
    return ChatSession(
        id=message.id,
        tenant_id=message.tenant_id,
        status=_STATES.get(message.status, "active"),
        step=message.step,
        consecutive_failures=message.consecutive_failures,
        setup_locked=message.setup_locked,
        funnel_slug=message.funnel_slug,
    )


def escalation(message: pb.Escalation) -> QueuedEscalation:
    return QueuedEscalation(
        id=message.id,
        session_id=message.session_id,
        tenant_id=message.tenant_id,
        step=message.step,
        reason=message.reason,
        failure_count=message.failure_count,
        state=message.state,
        summary=_object(message.summary_json),
        transcript_url=message.transcript_url,
        acknowledged_by=message.acknowledged_by,
        created_at=to_datetime(message.create_time) if message.HasField("create_time") else None,
    )


def _refusal(exc: grpc.aio.AioRpcError, closed: bool = False) -> Exception:
    """The console's reading of an AgentService error status (``closed``: a refused
    precondition means the conversation is closed)."""
    code = exc.code()
    if code in _ABSENT:
        return NoConversation(exc.details())
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return ConversationClosed() if closed else NotEscalated(exc.details())
    if code in _DOWN:
        return SourceUnavailable(code.name)
    return exc


async def _ask(call: Awaitable[T], closed: bool = False) -> T:
    """The call's answer, or the console's reading of its error."""
    try:
        return await answered(call)
    except grpc.aio.AioRpcError as exc:
        raise _refusal(exc, closed) from exc


class GrpcAssistant:
    def __init__(self, agent: grpc.aio.Channel, *, timeout_s: float, turn_timeout_s: float) -> None:
        self._stub: AgentServiceAsyncStub = pb_grpc.AgentServiceStub(agent)
        self._timeout = timeout_s
        self._turn_timeout = turn_timeout_s

    async def current(self, tenant_id: str, funnel_slug: str) -> Conversation:
        request = pb.GetCurrentSessionRequest(tenant_id=tenant_id, funnel_slug=funnel_slug)
        found = await _ask(self._stub.GetCurrentSession(request, timeout=self._timeout))
        return Conversation(session(found.session), [entry(e) for e in found.entries])

    async def start(self, tenant_id: str, funnel_slug: str, started_by: str) -> Conversation:
        request = pb.StartSessionRequest(
            tenant_id=tenant_id, funnel_slug=funnel_slug, started_by=started_by
        )
        started = await _ask(self._stub.StartSession(request, timeout=self._timeout))
        return Conversation(session(started.session), [entry(e) for e in started.entries])

    async def transcript(self, tenant_id: str, session_id: str) -> Conversation:
        request = pb.GetTranscriptRequest(tenant_id=tenant_id, session_id=session_id)
        found = await _ask(self._stub.GetTranscript(request, timeout=self._timeout))
        return Conversation(session(found.session), [entry(e) for e in found.entries])

    async def stream(
        self, tenant_id: str, session_id: str, content: str
    ) -> AsyncIterator[TurnEvent]:
        call = self._stub.StreamMessage(
            pb.StreamMessageRequest(tenant_id=tenant_id, session_id=session_id, content=content),
            timeout=self._turn_timeout,
        )
        try:
            async for event in call:
                kind = event.WhichOneof("event")
                if kind == "delta":
                    yield Delta(event.delta)
                elif kind == "entry":
                    yield entry(event.entry)
                elif kind == "session":
                    yield session(event.session)
        except grpc.aio.AioRpcError as exc:
            raise _refusal(exc, closed=True) from exc

    async def request_human(self, tenant_id: str, session_id: str) -> Conversation:
        request = pb.RequestHumanRequest(tenant_id=tenant_id, session_id=session_id)
        await _ask(self._stub.RequestHuman(request, timeout=self._timeout), closed=True)
        return await self.transcript(tenant_id, session_id)

    async def escalations(
        self, state: str, page_token: str = "", page_size: int = 0
    ) -> EscalationPage:
        request = pb.ListEscalationsRequest(state=state, page_token=page_token, page_size=page_size)
        listed = await _ask(self._stub.ListEscalations(request, timeout=self._timeout))
        return EscalationPage([escalation(e) for e in listed.escalations], listed.next_page_token)

    async def take_over(self, session_id: str, operator: str) -> QueuedEscalation:
        request = pb.TakeOverSessionRequest(session_id=session_id, operator=operator)
        taken = await _ask(self._stub.TakeOverSession(request, timeout=self._timeout))
        return escalation(taken.escalation)

    async def post_operator_message(self, session_id: str, operator: str, content: str) -> None:
        request = pb.PostOperatorMessageRequest(
            session_id=session_id, operator=operator, content=content
        )
        await _ask(self._stub.PostOperatorMessage(request, timeout=self._timeout))

    async def resume(self, session_id: str, operator: str) -> None:
        request = pb.ResumeSessionRequest(session_id=session_id, operator=operator)
        await _ask(self._stub.ResumeSession(request, timeout=self._timeout))

    async def export(self, tenant_id: str, session_id: str) -> str:
        request = pb.ExportTranscriptRequest(tenant_id=tenant_id, session_id=session_id)
        exported = await _ask(self._stub.ExportTranscript(request, timeout=self._timeout))
        return str(exported.json)
