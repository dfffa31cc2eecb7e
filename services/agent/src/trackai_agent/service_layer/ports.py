"""Ports of the agent: what the use cases need from the provisioner, ingestion, Meta's Graph API,
the web, the language model and the database. Adapters implement them structurally."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from trackai_agent.domain.model import (
    Entry,
    Escalation,
    FetchedPage,
    LlmReply,
    PixelRead,
    SessionRecord,
    SetupContext,
    Snippet,
    TestEventSent,
    TokenDebug,
    WebhookActivity,
)


class SetupRegistry(Protocol):
    """The provisioner: the seller's configuration, snippets and the test event."""

    async def context(self, tenant_id: str, funnel_slug: str) -> SetupContext: ...

    async def snippets(self, tenant_id: str, funnel_slug: str) -> Sequence[Snippet]:
        """Raises ``NotReady`` while no provisioning run produced them."""
        ...

    async def send_test_event(self, tenant_id: str, funnel_slug: str) -> TestEventSent:
        """Raises ``NotReady`` (with the provisioner's reason) when it cannot be sent yet."""
        ...


class WebhookReader(Protocol):
    """Ingestion's read API: verified webhooks per gateway."""

    async def activity(
        self, tenant_id: str, gateways: Sequence[str], since: datetime
    ) -> Sequence[WebhookActivity]: ...


class MetaGraph(Protocol):
    async def debug_token(self, token: str) -> TokenDebug: ...

    async def read_pixel(self, pixel_id: str, token: str) -> PixelRead: ...


class PageFetcher(Protocol):
    async def fetch(self, url: str) -> FetchedPage:
        """Follows redirects hop by hop; raises ``FetchRefused`` or ``DependencyError``."""
        ...


class PageRenderer(Protocol):
    async def render(self, url: str) -> str:
        """The DOM after the page's JavaScript ran, as HTML."""
        ...


class LanguageModel(Protocol):
    async def complete(
        self,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]],
        on_delta: Callable[[str], Awaitable[None]] | None = None,
    ) -> LlmReply:
        """The model's answer; with ``on_delta`` its text is also handed over as generated."""
        ...


class SessionStore(Protocol):
    async def create(
        self, tenant_id: str, funnel_slug: str, opened_by: str, channel: str
    ) -> SessionRecord: ...

    async def get(self, session_id: str, tenant_id: str) -> SessionRecord | None: ...

    async def entries(self, session_id: str) -> list[Entry]: ...

    async def record_turn(self, session: SessionRecord, entries: Sequence[Entry]) -> None:
        """Append ``entries`` and save the session's state, counters and tokens atomically."""
        ...

    async def record_escalation(
        self,
        session: SessionRecord,
        entries: Sequence[Entry],
        escalation: Escalation,
        webhook_body: bytes | None,
    ) -> Escalation:
        """Like :meth:`record_turn`, plus the escalation and its support-webhook message, in one
        transaction (the message is never lost)."""
        ...

    async def escalations(
        self, state: str, *, after: tuple[datetime, str] | None = None, limit: int | None = None
    ) -> list[Escalation]:
        """Oldest first (created_at, id), after ``after``, at most ``limit``."""
        ...

    async def take_over(self, session_id: str, operator: str) -> Escalation | None: ...

    async def resume(self, session_id: str, operator: str) -> SessionRecord | None: ...

    async def current(self, tenant_id: str, funnel_slug: str) -> SessionRecord | None:
        """The tenant's most recent session that is not closed."""
        ...

    async def open_escalation(self, session_id: str) -> Escalation | None:
        """The session's escalation that is not resolved."""
        ...

    async def post_operator_message(
        self, session_id: str, operator: str, content: str
    ) -> Entry | None:
        """Append an operator's message to a session whose escalation was taken over; None
        when it is not escalated or not taken over. ``LookupError`` when absent."""
        ...
