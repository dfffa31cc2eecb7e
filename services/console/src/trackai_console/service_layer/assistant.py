"""Chat panel and escalation-queue use cases. The tenant sent to the agent always comes from the
signed-in user (a seller's own tenant; an operator's chosen one), never from a form; operator
actions need the operator role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from trackai_console.domain.accounts import User
from trackai_console.domain.assistant import (
    AssistantApi,
    Conversation,
    EscalationPage,
    NoConversation,
    QueuedEscalation,
    TurnEvent,
)
from trackai_console.service_layer.events import NotVisible
from trackai_console.service_layer.ports import SourceUnavailable, TenantSummary

#: Escalations read per call when looking one session up across the whole queue.
ESCALATION_SCAN_PAGE = 200


def operator_handle(user: User) -> str:
    """How the agent and the seller see an operator: no e-mail (the console keeps only its
    hash); the id's first block, which `trackai user list` maps to the account."""
    return f"operador-{str(user.id)[:8]}"


def _operator(user: User) -> None:
    if not user.is_operator:
        raise NotVisible("escalations")


class Assistant:
    def __init__(
        self,
        api: AssistantApi,
        tenants: Callable[[], Awaitable[list[TenantSummary]]] | None = None,
    ) -> None:
        self.api = api
        self._tenants = tenants

    # --- the seller's panel (an operator acting on a chosen tenant uses the same) --------------
    async def open(self, tenant_id: str, user: User, funnel_slug: str = "") -> Conversation:
        """The tenant's open conversation (resumed after a reload), or a new one."""
        try:
            return await self.api.current(tenant_id, funnel_slug)
        except NoConversation:
            return await self.api.start(tenant_id, funnel_slug, f"console:{user.id}")

    async def conversation(self, tenant_id: str, session_id: str) -> Conversation:
        return await self.api.transcript(tenant_id, session_id)

    def send(self, tenant_id: str, session_id: str, content: str) -> AsyncIterator[TurnEvent]:
        return self.api.stream(tenant_id, session_id, content)

    async def request_human(self, tenant_id: str, session_id: str) -> Conversation:
        return await self.api.request_human(tenant_id, session_id)

    # --- operators -----------------------------------------------------------------------------
    async def queue(self, user: User, state: str = "", page_token: str = "") -> EscalationPage:
        _operator(user)
        return await self.api.escalations(state, page_token)

    async def tenant_names(self, user: User) -> dict[str, str]:
        """Tenant id → name for the queue; empty when the registry does not answer (the queue
        still shows the ids)."""
        _operator(user)
        if self._tenants is None:
            return {}
        try:
            return {t.id: t.name for t in await self._tenants()}
        except SourceUnavailable:
            return {}

    async def escalation(self, user: User, session_id: str) -> QueuedEscalation:
        """The session's latest escalation (any state); NotVisible when it never escalated."""
        _operator(user)
        for state in ("", "resolved"):
            found: list[QueuedEscalation] = []
            token = ""
            while True:
                page = await self.api.escalations(state, token, ESCALATION_SCAN_PAGE)
                found += [e for e in page.escalations if e.session_id == session_id]
                token = page.next_token
                if not token:
                    break
            if found:
                return found[-1]
        raise NotVisible("session")

    async def operator_view(
        self, user: User, session_id: str
    ) -> tuple[QueuedEscalation, Conversation]:
        escalation = await self.escalation(user, session_id)
        try:
            return escalation, await self.api.transcript(escalation.tenant_id, session_id)
        except NoConversation:
            raise NotVisible("session") from None

    async def take_over(self, user: User, session_id: str) -> QueuedEscalation:
        _operator(user)
        return await self.api.take_over(session_id, operator_handle(user))

    async def post_operator_message(self, user: User, session_id: str, content: str) -> None:
        _operator(user)
        await self.api.post_operator_message(session_id, operator_handle(user), content)

    async def resume(self, user: User, session_id: str) -> None:
        _operator(user)
        await self.api.resume(session_id, operator_handle(user))

    async def export(self, user: User, session_id: str) -> str:
        escalation = await self.escalation(user, session_id)
        try:
            return await self.api.export(escalation.tenant_id, session_id)
        except NoConversation:
            raise NotVisible("session") from None
