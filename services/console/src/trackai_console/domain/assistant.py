"""The setup assistant as the console shows it: a conversation's entries (tool results become
cards with their pt-BR message and next step), its state, and the operators' escalation queue.
The agent service owns all of it; these are read-only views of its answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

#: Each tool as a seller reads its card's title.
TOOL_TITLES = {
    "validate_meta_token": "Token do Meta",
    "validate_gateway_webhook": "Webhook do checkout",
    "probe_landing_url": "Página de vendas",
    "check_pixel_presence": "Pixel na página",
    "send_test_capi_event": "Evento de teste",
    "generate_tracking_snippet": "Código de rastreamento",
}
STEP_TITLES = {
    "meta_token": "Token do Meta",
    "gateway_webhook": "Webhook do checkout",
    "landing_url": "Página de vendas",
    "tracking_snippet": "Código de rastreamento",
    "pixel_presence": "Pixel na página",
    "test_event": "Evento de teste",
    "done": "Concluída",
}
STATUS_LABELS = {"ok": "OK", "warning": "Atenção", "error": "Falhou"}
ESCALATION_STATES = {
    "open": "Aguardando especialista",
    "acknowledged": "Com especialista",
    "resolved": "Resolvido",
}


@dataclass(frozen=True)
class ChatEntry:
    """One turn as shown: ``role`` is user, assistant, tool or operator."""

    role: str
    content: str
    seq: int = 0
    created_at: datetime | None = None
    tool_name: str = ""
    #: For tool entries: ok, warning or error, and the tool's verdict.
    status: str = ""
    message: str = ""
    action: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    #: An assistant entry that only asked for tools (nothing to show the seller).
    calls_only: bool = False

    @property
    def tool_title(self) -> str:
        return TOOL_TITLES.get(self.tool_name, self.tool_name)

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def visible(self) -> bool:
        return not (self.role == "assistant" and self.calls_only and not self.content.strip())


@dataclass(frozen=True)
class ChatSession:
    id: str
    tenant_id: str
    status: str
    step: str
    consecutive_failures: int
    setup_locked: bool
    funnel_slug: str = ""

    @property
    def escalated(self) -> bool:
        return self.status == "escalated"

    @property
    def step_title(self) -> str:
        return STEP_TITLES.get(self.step, self.step)


@dataclass(frozen=True)
class Conversation:
    session: ChatSession
    entries: list[ChatEntry]


@dataclass(frozen=True)
class Delta:
    """A piece of the assistant's answer while the language model writes it."""

    text: str


#: What a streamed turn yields: text pieces, finished entries, then the session.
TurnEvent = Delta | ChatEntry | ChatSession


@dataclass(frozen=True)
class QueuedEscalation:
    id: str
    session_id: str
    tenant_id: str
    step: str
    reason: str
    failure_count: int
    state: str
    summary: dict[str, Any]
    transcript_url: str
    acknowledged_by: str
    created_at: datetime | None

    @property
    def step_title(self) -> str:
        return STEP_TITLES.get(self.step, self.step)

    @property
    def state_label(self) -> str:
        return ESCALATION_STATES.get(self.state, self.state)

    @property
    def failures(self) -> list[dict[str, Any]]:
        found = self.summary.get("failures")
        return [f for f in found if isinstance(f, dict)] if isinstance(found, list) else []

    @property
    def suggested_fix(self) -> str:
        return str(self.summary.get("suggested_fix") or "")


class NoConversation(Exception):
    """The tenant has no open conversation (or the session is not theirs)."""


class ConversationClosed(Exception):
    pass


class NotEscalated(Exception):
    """An operator action on a session that is not escalated (or not taken over)."""


@dataclass(frozen=True)
class EscalationPage:
    escalations: list[QueuedEscalation]
    next_token: str


class AssistantApi(Protocol):
    """The agent's AgentService, called with the tenant id of the signed-in session."""

    async def current(self, tenant_id: str, funnel_slug: str) -> Conversation:
        """Raises NoConversation."""
        ...

    async def start(self, tenant_id: str, funnel_slug: str, started_by: str) -> Conversation: ...

    async def transcript(self, tenant_id: str, session_id: str) -> Conversation:
        """Raises NoConversation."""
        ...

    def stream(self, tenant_id: str, session_id: str, content: str) -> AsyncIterator[TurnEvent]:
        """Raises NoConversation or ConversationClosed while iterating."""
        ...

    async def request_human(self, tenant_id: str, session_id: str) -> Conversation:
        """Raises NoConversation or ConversationClosed."""
        ...

    async def escalations(
        self, state: str, page_token: str = "", page_size: int = 0
    ) -> EscalationPage:
        """Oldest first, one page (the agent's default size unless given)."""
        ...

    async def take_over(self, session_id: str, operator: str) -> QueuedEscalation:
        """Raises NotEscalated."""
        ...

    async def post_operator_message(self, session_id: str, operator: str, content: str) -> None:
        """Raises NotEscalated (not escalated, or not taken over) or NoConversation."""
        ...

    async def resume(self, session_id: str, operator: str) -> None:
        """Raises NotEscalated or NoConversation."""
        ...

    async def export(self, tenant_id: str, session_id: str) -> str:
        """The transcript as JSON; raises NoConversation."""
        ...
