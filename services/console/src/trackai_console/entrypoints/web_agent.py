"""The setup assistant's chat panel and the operators' escalation queue.

The panel (``templates/agent/panel.html``) loads itself with htmx, so any page can include it
(the setup wizard does); ``/assistente`` shows it alone. A message is posted with ``fetch`` and
answered as server-sent events in the same response (``static/agent.js`` reads them): the model's
text as ``delta`` pieces, each finished entry as ``entry`` (HTML: a bubble, or a tool's card), and
the session as ``session`` (the step and, after an escalation, the notice). One request per turn,
so any console replica can answer it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from trackai_console.domain.accounts import User
from trackai_console.domain.assistant import (
    ESCALATION_STATES,
    ChatEntry,
    ChatSession,
    Conversation,
    ConversationClosed,
    Delta,
    NoConversation,
    NotEscalated,
)
from trackai_console.entrypoints.pages import CurrentUser, Pages
from trackai_console.service_layer.assistant import Assistant
from trackai_console.service_layer.events import NotVisible, scope
from trackai_console.service_layer.ports import SourceUnavailable

#: While a session is with a specialist, the panel polls for the operator's messages.
POLL_SECONDS = 4
UNAVAILABLE = "O assistente não respondeu agora. Tente de novo em instantes."
CLOSED = "Esta conversa foi encerrada. Recarregue a página para começar outra."
NOTICES = {
    "assumida": "Você assumiu a conversa. O vendedor vê as suas mensagens no assistente.",
    "enviada": "Mensagem enviada ao vendedor.",
    "devolvida": "Conversa devolvida ao assistente; as falhas seguidas foram zeradas.",
}


def _tenant(user: User, chosen: str) -> str:
    tenant = scope(user, chosen)
    if tenant is None:
        raise NotVisible("tenant")
    return tenant


def _sse(event: str, payload: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n"


def agent_routes(router: APIRouter, pages: Pages, assistant: Assistant) -> None:
    def fragment(name: str, request: Request, context: dict[str, Any]) -> str:
        template = pages.templates.get_template(name)
        return template.render({"request": request, **context})

    def chat_context(user: User, tenant: str, conversation: Conversation) -> dict[str, Any]:
        return {
            "user": user,
            "conv": conversation,
            "session": conversation.session,
            "entries": [e for e in conversation.entries if e.visible],
            "agent_tenant": tenant if user.is_operator else "",
            "poll_seconds": POLL_SECONDS,
        }

    async def render_chat(
        request: Request, user: User, tenant: str, conversation: Conversation
    ) -> HTMLResponse:
        return pages.render(request, "agent/_chat.html", chat_context(user, tenant, conversation))

    @router.get("/assistente", response_class=HTMLResponse)
    async def assistant_page(request: Request, user: CurrentUser, tenant: str = "") -> Response:
        if scope(user, tenant) is None:
            # An operator without a chosen tenant works from the queue.
            return RedirectResponse("/operador/escalonamentos", status_code=303)
        return pages.render(
            request,
            "agent/page.html",
            {"user": user, "page": "assistant", "agent_tenant": tenant},
        )

    @router.get("/assistente/conversa", response_class=HTMLResponse)
    async def conversation(
        request: Request, user: CurrentUser, tenant: str = "", funil: str = ""
    ) -> HTMLResponse:
        scoped = _tenant(user, tenant)
        try:
            opened = await assistant.open(scoped, user, funil)
        except SourceUnavailable:
            return pages.render(request, "agent/_unavailable.html", {"message": UNAVAILABLE})
        return await render_chat(request, user, scoped, opened)

    @router.get("/assistente/historico", response_class=HTMLResponse)
    async def history(
        request: Request, user: CurrentUser, sessao: str = "", tenant: str = ""
    ) -> HTMLResponse:
        scoped = _tenant(user, tenant)
        try:
            found = await assistant.conversation(scoped, sessao)
        except NoConversation:
            raise NotVisible("session") from None
        context = {**chat_context(user, scoped, found), "oob_status": True}
        return pages.render(request, "agent/_log.html", context)

    @router.post("/assistente/mensagens")
    async def send(
        request: Request,
        user: CurrentUser,
        sessao: Annotated[str, Form()] = "",
        texto: Annotated[str, Form()] = "",
        tenant: Annotated[str, Form()] = "",
    ) -> Response:
        scoped = _tenant(user, tenant)
        content = texto.strip()
        if not content:
            return Response(status_code=400, content="Escreva uma mensagem.")

        async def events() -> AsyncIterator[str]:
            try:
                async for event in assistant.send(scoped, sessao, content):
                    if isinstance(event, Delta):
                        yield _sse("delta", {"text": event.text})
                    elif isinstance(event, ChatEntry):
                        html = fragment("agent/_entry.html", request, {"e": event})
                        yield _sse("entry", {"role": event.role, "html": html.strip()})
                    elif isinstance(event, ChatSession):
                        yield _sse("session", session_payload(request, user, scoped, event))
            except NoConversation:
                yield _sse("error", {"html": error_html(request, CLOSED)})
            except ConversationClosed:
                yield _sse("error", {"html": error_html(request, CLOSED)})
            except SourceUnavailable:
                yield _sse("error", {"html": error_html(request, UNAVAILABLE)})

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    def session_payload(
        request: Request, user: User, tenant: str, session: ChatSession
    ) -> dict[str, Any]:
        context = {"session": session, "agent_tenant": tenant if user.is_operator else ""}
        return {
            "status": session.status,
            "escalated": session.escalated,
            "step": session.step_title,
            "status_html": fragment("agent/_status.html", request, context).strip(),
        }

    def error_html(request: Request, message: str) -> str:
        return fragment("agent/_error.html", request, {"message": message}).strip()

    @router.post("/assistente/especialista", response_class=HTMLResponse)
    async def ask_for_human(
        request: Request,
        user: CurrentUser,
        sessao: Annotated[str, Form()] = "",
        tenant: Annotated[str, Form()] = "",
    ) -> HTMLResponse:
        scoped = _tenant(user, tenant)
        try:
            escalated = await assistant.request_human(scoped, sessao)
        except NoConversation:
            raise NotVisible("session") from None
        except ConversationClosed:
            return pages.render(request, "agent/_unavailable.html", {"message": CLOSED})
        return await render_chat(request, user, scoped, escalated)

    operator_routes(router, pages, assistant)


def operator_routes(router: APIRouter, pages: Pages, assistant: Assistant) -> None:
    @router.get("/operador/escalonamentos", response_class=HTMLResponse)
    async def queue(
        request: Request, user: CurrentUser, estado: str = "", pagina: str = ""
    ) -> HTMLResponse:
        state = estado if estado in ESCALATION_STATES else ""
        page = await assistant.queue(user, state, pagina)
        escalations = page.escalations
        return pages.render(
            request,
            "agent/queue.html",
            {
                "user": user,
                "page": "escalations",
                "escalations": escalations,
                "tenant_names": await assistant.tenant_names(user) if escalations else {},
                "states": ESCALATION_STATES,
                "state": state,
                "next_token": page.next_token,
            },
        )

    async def operator_page(
        request: Request, user: User, session_id: str, notice: str = "", status_code: int = 200
    ) -> HTMLResponse:
        escalation, conversation = await assistant.operator_view(user, session_id)
        return pages.render(
            request,
            "agent/operator_session.html",
            {
                "user": user,
                "page": "escalations",
                "escalation": escalation,
                "session": conversation.session,
                "entries": [e for e in conversation.entries if e.visible],
                "poll_seconds": POLL_SECONDS,
                "notice": notice,
                "ok_notices": list(NOTICES.values()),
            },
            status_code=status_code,
        )

    @router.get("/operador/conversas/{session_id}", response_class=HTMLResponse)
    async def operator_session(
        request: Request, user: CurrentUser, session_id: str, aviso: str = ""
    ) -> HTMLResponse:
        return await operator_page(request, user, session_id, NOTICES.get(aviso, ""))

    @router.get("/operador/conversas/{session_id}/transcricao", response_class=HTMLResponse)
    async def operator_transcript(
        request: Request, user: CurrentUser, session_id: str
    ) -> HTMLResponse:
        """The transcript fragment the operator's page polls while the session is escalated."""
        _, conversation = await assistant.operator_view(user, session_id)
        return pages.render(
            request,
            "agent/_operator_log.html",
            {
                "session": conversation.session,
                "entries": [e for e in conversation.entries if e.visible],
                "poll_seconds": POLL_SECONDS,
            },
        )

    @router.get("/operador/conversas/{session_id}/exportar")
    async def export(user: CurrentUser, session_id: str) -> Response:
        document = await assistant.export(user, session_id)
        return Response(
            document,
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="conversa-{session_id}.json"'},
        )

    async def act(
        request: Request,
        user: User,
        session_id: str,
        action: Callable[[], Awaitable[object]],
        *,
        done: str,
        refused: str,
    ) -> Response:
        """Run an operator action: back to the conversation with ``done``'s notice, or the page
        again with ``refused`` when the agent refused the action's precondition."""
        try:
            await action()
        except NotEscalated:
            return await operator_page(request, user, session_id, refused, 409)
        except NoConversation:
            raise NotVisible("session") from None
        return RedirectResponse(f"/operador/conversas/{session_id}?aviso={done}", status_code=303)

    @router.post("/operador/conversas/{session_id}/assumir", response_class=HTMLResponse)
    async def take_over(request: Request, user: CurrentUser, session_id: str) -> Response:
        return await act(
            request,
            user,
            session_id,
            lambda: assistant.take_over(user, session_id),
            done="assumida",
            refused="Esta conversa já foi assumida ou resolvida.",
        )

    @router.post("/operador/conversas/{session_id}/mensagem", response_class=HTMLResponse)
    async def post_message(
        request: Request,
        user: CurrentUser,
        session_id: str,
        texto: Annotated[str, Form()] = "",
    ) -> Response:
        if not texto.strip():
            return await operator_page(
                request, user, session_id, "Escreva a mensagem para o vendedor.", 400
            )
        return await act(
            request,
            user,
            session_id,
            lambda: assistant.post_operator_message(user, session_id, texto),
            done="enviada",
            refused="Assuma a conversa antes de responder ao vendedor.",
        )

    @router.post("/operador/conversas/{session_id}/devolver", response_class=HTMLResponse)
    async def resume(request: Request, user: CurrentUser, session_id: str) -> Response:
        return await act(
            request,
            user,
            session_id,
            lambda: assistant.resume(user, session_id),
            done="devolvida",
            refused="Esta conversa não está com um especialista.",
        )
