"""The chat panel and the escalation queue through the real console app, talking gRPC (as the
console's own identity) to an in-memory AgentService on a real server that records what it was
asked. The real agent behind the panel runs in tests/e2e/test_console_agent.py."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import grpc
import httpx
import pytest

from trackai.agent.v1 import agent_service_pb2 as pb
from trackai.agent.v1 import agent_service_pb2_grpc as pb_grpc
from trackai_kit.grpc import AccessPolicy, rpcs, start_grpc_server
from trackai_kit.settings import GrpcSettings, local_dev_callers

from .conftest import PASSWORD, Console, build_app, csrf_of, sign_in

pytestmark = pytest.mark.integration

Context = grpc.aio.ServicerContext[Any, Any]
SERVICE = pb.DESCRIPTOR.services_by_name["AgentService"]
#: Only the console may call this fake: a console that called as anyone else is refused.
POLICY = AccessPolicy.of({"console": rpcs(SERVICE)})
CARD = {
    "status": "error",
    "message": "O token expirou em 02/12.",
    "action": "Gere um novo em Business Settings → System Users → Generate token.",
    "details": {"reason": "expired"},
}


def _entry(role: int, content: str, seq: int, **extra: Any) -> pb.TranscriptEntry:
    return pb.TranscriptEntry(role=role, content=content, seq=seq, **extra)


@dataclass
class _Session:
    id: str
    tenant_id: str
    status: int = pb.SESSION_STATUS_ACTIVE
    entries: list[pb.TranscriptEntry] = field(default_factory=list)
    escalation: pb.Escalation | None = None

    def pb(self) -> pb.Session:
        return pb.Session(
            id=self.id, tenant_id=self.tenant_id, status=self.status, step="meta_token"
        )

    def add(self, role: int, content: str, **extra: Any) -> pb.TranscriptEntry:
        entry = _entry(role, content, len(self.entries) + 1, **extra)
        self.entries.append(entry)
        return entry


class FakeAgent(pb_grpc.AgentServiceServicer):
    def __init__(self) -> None:
        self.sessions: dict[str, _Session] = {}
        self.calls: list[tuple[str, str]] = []
        #: The agent's default page size (0: everything on one page).
        self.page = 0

    async def _mine(self, tenant_id: str, session_id: str, context: Context) -> _Session:
        found = self.sessions.get(session_id)
        if found is None or found.tenant_id != tenant_id:
            await context.abort(grpc.StatusCode.NOT_FOUND, "session not found for this tenant")
        assert found is not None
        return found

    async def StartSession(self, request: pb.StartSessionRequest, context: Context) -> Any:
        self.calls.append(("StartSession", request.tenant_id))
        session = _Session(str(uuid.uuid4()), request.tenant_id)
        session.add(pb.ROLE_ASSISTANT, "Olá! Escreva começar.")
        self.sessions[session.id] = session
        return pb.StartSessionResponse(session=session.pb(), entries=session.entries)

    async def GetCurrentSession(
        self, request: pb.GetCurrentSessionRequest, context: Context
    ) -> Any:
        self.calls.append(("GetCurrentSession", request.tenant_id))
        mine = [s for s in self.sessions.values() if s.tenant_id == request.tenant_id]
        if not mine:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no session")
        return pb.GetCurrentSessionResponse(session=mine[-1].pb(), entries=mine[-1].entries)

    async def GetTranscript(self, request: pb.GetTranscriptRequest, context: Context) -> Any:
        self.calls.append(("GetTranscript", request.tenant_id))
        session = await self._mine(request.tenant_id, request.session_id, context)
        return pb.GetTranscriptResponse(session=session.pb(), entries=session.entries)

    async def StreamMessage(
        self, request: pb.StreamMessageRequest, context: Context
    ) -> AsyncIterator[pb.StreamMessageResponse]:
        self.calls.append(("StreamMessage", request.tenant_id))
        session = await self._mine(request.tenant_id, request.session_id, context)
        session.add(pb.ROLE_USER, request.content)
        calls = json.dumps({"tool_calls": [{"id": "c1", "name": "validate_meta_token"}]})
        yield pb.StreamMessageResponse(
            entry=session.add(pb.ROLE_ASSISTANT, "", tool_arguments_json=calls)
        )
        yield pb.StreamMessageResponse(
            entry=session.add(
                pb.ROLE_TOOL,
                json.dumps(CARD),
                tool_name="validate_meta_token",
                tool_status="error",
                tool_result_json=json.dumps(CARD),
            )
        )
        answer = "O seu token <expirou>: gere outro."
        for piece in ("O seu ", "token <expirou>", ": gere outro."):
            yield pb.StreamMessageResponse(delta=piece)
        yield pb.StreamMessageResponse(entry=session.add(pb.ROLE_ASSISTANT, answer))
        yield pb.StreamMessageResponse(session=session.pb())

    async def RequestHuman(self, request: pb.RequestHumanRequest, context: Context) -> Any:
        self.calls.append(("RequestHuman", request.tenant_id))
        session = await self._mine(request.tenant_id, request.session_id, context)
        session.status = pb.SESSION_STATUS_ESCALATED
        session.escalation = pb.Escalation(
            id=str(uuid.uuid4()),
            session_id=session.id,
            tenant_id=session.tenant_id,
            step="meta_token",
            reason="O vendedor pediu para falar com um especialista",
            failure_count=1,
            state="open",
            summary_json=json.dumps(
                {
                    "failures": [{"tool": "validate_meta_token", "message": CARD["message"]}],
                    "suggested_fix": CARD["action"],
                    "tried": ["validate_meta_token"],
                }
            ),
        )
        added = session.add(pb.ROLE_ASSISTANT, "Combinado: chamei um especialista.")
        return pb.RequestHumanResponse(
            session=session.pb(), escalation=session.escalation, entries=[added]
        )

    async def ListEscalations(self, request: pb.ListEscalationsRequest, context: Context) -> Any:
        self.calls.append(("ListEscalations", ""))
        found = [s.escalation for s in self.sessions.values() if s.escalation is not None]
        wanted = [
            e
            for e in found
            if (e.state == request.state if request.state else e.state != "resolved")
        ]
        # Paged like the agent (by position here): `page` stands for its cap.
        size = self.page or request.page_size or len(wanted) or 1
        start = int(request.page_token or 0)
        more = start + size < len(wanted)
        return pb.ListEscalationsResponse(
            escalations=wanted[start : start + size],
            next_page_token=str(start + size) if more else "",
        )

    def _escalated(self, session_id: str) -> _Session | None:
        session = self.sessions.get(session_id)
        return session if session and session.escalation else None

    async def TakeOverSession(self, request: pb.TakeOverSessionRequest, context: Context) -> Any:
        self.calls.append(("TakeOverSession", request.operator))
        session = self._escalated(request.session_id)
        if session is None or session.escalation is None or session.escalation.state != "open":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no open escalation")
        assert session is not None and session.escalation is not None
        session.escalation.state = "acknowledged"
        session.escalation.acknowledged_by = request.operator
        session.add(pb.ROLE_OPERATOR, f"O especialista {request.operator} assumiu a conversa.")
        return pb.TakeOverSessionResponse(escalation=session.escalation)

    async def PostOperatorMessage(
        self, request: pb.PostOperatorMessageRequest, context: Context
    ) -> Any:
        self.calls.append(("PostOperatorMessage", request.operator))
        session = self._escalated(request.session_id)
        if session is None or session.escalation is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not escalated")
        assert session is not None and session.escalation is not None
        if session.escalation.state != "acknowledged":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not taken over")
        return pb.PostOperatorMessageResponse(entry=session.add(pb.ROLE_OPERATOR, request.content))

    async def ResumeSession(self, request: pb.ResumeSessionRequest, context: Context) -> Any:
        self.calls.append(("ResumeSession", request.operator))
        session = self._escalated(request.session_id)
        if session is None or session.escalation is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not escalated")
        assert session is not None and session.escalation is not None
        session.escalation.state = "resolved"
        session.status = pb.SESSION_STATUS_ACTIVE
        return pb.ResumeSessionResponse(session=session.pb())

    async def ExportTranscript(self, request: pb.ExportTranscriptRequest, context: Context) -> Any:
        session = await self._mine(request.tenant_id, request.session_id, context)
        return pb.ExportTranscriptResponse(
            json=json.dumps({"session": {"id": session.id}, "entries": len(session.entries)})
        )


@pytest.fixture
async def agent() -> AsyncIterator[tuple[FakeAgent, int]]:
    fake = FakeAgent()
    server = await start_grpc_server(
        GrpcSettings(port=0, callers=local_dev_callers()),
        partial(pb_grpc.add_AgentServiceServicer_to_server, fake),
        [SERVICE.full_name],
        POLICY,
    )
    try:
        yield fake, server.port
    finally:
        await server.stop(0)


# Async: grpc.aio channels bind to the running loop (a sync fixture finds none in the main thread
# once a test there has run asyncio.run, as test order under xdist showed).
@pytest.fixture
async def with_agent(console: Console, agent: tuple[FakeAgent, int]) -> FakeAgent:
    console.app = build_app(console.accounts, console.pool, agent_target=f"127.0.0.1:{agent[1]}")
    return agent[0]


def sse_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


SESSION_FIELD = re.compile(r'name="sessao" value="([^"]+)"')


async def _open_chat(client: httpx.AsyncClient) -> str:
    chat = await client.get("/assistente/conversa", headers={"HX-Request": "true"})
    assert chat.status_code == 200, chat.text
    found = SESSION_FIELD.search(chat.text)
    assert found, chat.text
    return found.group(1)


async def test_panel_starts_then_resumes_the_sellers_conversation(
    console: Console, with_agent: FakeAgent
) -> None:
    tenant = await console.seller("a@loja.com.br")
    async with console.client() as client:
        await sign_in(client, "a@loja.com.br")
        page = await client.get("/assistente")
        first = await _open_chat(client)
        # A reload (or another tab) resumes the same conversation instead of starting anew.
        again = await _open_chat(client)
        # A tenant in the URL is ignored for a seller.
        other = await client.get(f"/assistente/conversa?tenant={uuid.uuid4()}")
    assert page.status_code == 200 and 'hx-get="/assistente/conversa' in page.text
    assert first == again and SESSION_FIELD.search(other.text).group(1) == first  # type: ignore[union-attr]
    assert [c for c in with_agent.calls if c[0] == "StartSession"] == [
        ("StartSession", str(tenant))
    ]
    assert {t for _, t in with_agent.calls} == {str(tenant)}


async def test_message_streams_deltas_cards_and_the_answer(
    console: Console, with_agent: FakeAgent
) -> None:
    tenant = await console.seller("a@loja.com.br")
    async with console.client() as client:
        await sign_in(client, "a@loja.com.br")
        session_id = await _open_chat(client)
        token = await csrf_of(client, "/assistente")
        answer = await client.post(
            "/assistente/mensagens",
            data={
                "sessao": session_id,
                "texto": "começar",
                "csrf_token": token,
                "tenant": str(uuid.uuid4()),
            },
        )
        no_csrf = await client.post(
            "/assistente/mensagens", data={"sessao": session_id, "texto": "oi"}
        )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = sse_events(answer.text)
    assert [name for name, _ in events] == ["entry", "entry", "delta", "delta", "delta",
                                            "entry", "session"]  # fmt: skip
    calls_only, card, *_ = (payload for name, payload in events if name == "entry")
    # The model's tool request shows nothing; the tool's verdict is a card with its next step.
    assert calls_only["html"] == ""
    assert 'data-tool="validate_meta_token"' in card["html"]
    assert "Falhou" in card["html"] and "O token expirou em 02/12." in card["html"]
    assert "Próximo passo:" in card["html"] and "Generate token" in card["html"]
    assert (
        "".join(p["text"] for n, p in events if n == "delta")
        == "O seu token <expirou>: gere outro."
    )
    final = events[5][1]
    assert "token &lt;expirou&gt;" in final["html"]  # escaped
    assert events[-1][1]["escalated"] is False
    assert ("StreamMessage", str(tenant)) in with_agent.calls
    assert no_csrf.status_code == 403


async def test_another_tenants_session_is_not_reachable(
    console: Console, with_agent: FakeAgent
) -> None:
    await console.seller("a@loja.com.br")
    await console.seller("b@loja.com.br")
    async with console.client() as a, console.client() as b:
        await sign_in(a, "a@loja.com.br")
        await sign_in(b, "b@loja.com.br")
        session_a = await _open_chat(a)
        token = await csrf_of(b, "/assistente")
        sent = await b.post(
            "/assistente/mensagens",
            data={"sessao": session_a, "texto": "oi", "csrf_token": token},
        )
        asked = await b.post(
            "/assistente/especialista",
            data={"sessao": session_a, "csrf_token": token},
        )
        history = await b.get(f"/assistente/historico?sessao={session_a}")
        queue = await b.get("/operador/escalonamentos")
        transcript = await b.get(f"/operador/conversas/{session_a}")
    assert [name for name, _ in sse_events(sent.text)] == ["error"]
    assert "encerrada" in sse_events(sent.text)[0][1]["html"]
    assert (asked.status_code, history.status_code) == (404, 404)
    assert (queue.status_code, transcript.status_code) == (404, 404)
    assert with_agent.sessions[session_a].status == pb.SESSION_STATUS_ACTIVE
    assert len(with_agent.sessions[session_a].entries) == 1


async def test_seller_asks_for_a_specialist_and_the_operator_answers(
    console: Console, with_agent: FakeAgent
) -> None:
    tenant = await console.seller("a@loja.com.br")
    await console.accounts.create_user("ops@trackai.com.br", "operator", None, PASSWORD)
    async with console.client() as seller, console.client() as ops:
        await sign_in(seller, "a@loja.com.br")
        session_id = await _open_chat(seller)
        token = await csrf_of(seller, "/assistente")
        asked = await seller.post(
            "/assistente/especialista",
            data={"sessao": session_id, "csrf_token": token},
            headers={"HX-Request": "true"},
        )
        await sign_in(ops, "ops@trackai.com.br")
        queue = await ops.get("/operador/escalonamentos")
        ops_token = await csrf_of(ops, "/operador/escalonamentos")
        early = await ops.post(
            f"/operador/conversas/{session_id}/mensagem",
            data={"texto": "Oi!", "csrf_token": ops_token},
        )
        taken = await ops.post(
            f"/operador/conversas/{session_id}/assumir", data={"csrf_token": ops_token}
        )
        twice = await ops.post(
            f"/operador/conversas/{session_id}/assumir", data={"csrf_token": ops_token}
        )
        posted = await ops.post(
            f"/operador/conversas/{session_id}/mensagem",
            data={"texto": "Oi! Vou gerar o token com você.", "csrf_token": ops_token},
        )
        view = await ops.get(f"/operador/conversas/{session_id}")
        transcript = await ops.get(
            f"/operador/conversas/{session_id}/transcricao", headers={"HX-Request": "true"}
        )
        seller_polls_it = await seller.get(f"/operador/conversas/{session_id}/transcricao")
        exported = await ops.get(f"/operador/conversas/{session_id}/exportar")
        polled = await seller.get(
            f"/assistente/historico?sessao={session_id}", headers={"HX-Request": "true"}
        )
        resumed = await ops.post(
            f"/operador/conversas/{session_id}/devolver", data={"csrf_token": ops_token}
        )
        after = await seller.get(
            f"/assistente/historico?sessao={session_id}", headers={"HX-Request": "true"}
        )
        transcript_after = await ops.get(
            f"/operador/conversas/{session_id}/transcricao", headers={"HX-Request": "true"}
        )
    # The seller's panel: the notice, no more button, and the log waits for the specialist.
    assert asked.status_code == 200
    assert "Um especialista do Track AI vai continuar esta conversa." in asked.text
    assert "Falar com um especialista" not in asked.text
    assert 'hx-trigger="every 4s"' in asked.text
    # The queue: tenant, step, each failure with its message, the suggested fix, the links.
    assert queue.status_code == 200
    for expected in (str(tenant), "Token do Meta", "O token expirou em 02/12.",
                     "Generate token", f"/operador/conversas/{session_id}/exportar",
                     "Assumir"):  # fmt: skip
        assert expected in queue.text, expected
    assert early.status_code == 409 and "Assuma a conversa" in early.text
    assert taken.status_code == 303 and twice.status_code == 409
    assert posted.status_code == 303
    assert "Oi! Vou gerar o token com você." in view.text and "Devolver ao assistente" in view.text
    # The operator's transcript refreshes itself while the session waits for a specialist (the
    # seller's new messages appear without a reload), and stops once it is back.
    poll = f'hx-get="/operador/conversas/{session_id}/transcricao"'
    assert poll in view.text and 'hx-trigger="every 4s"' in view.text
    assert "Oi! Vou gerar o token com você." in transcript.text and poll in transcript.text
    assert seller_polls_it.status_code == 404, "an operator page"
    assert transcript_after.status_code == 200 and "hx-trigger" not in transcript_after.text
    assert exported.headers["content-type"] == "application/json"
    assert json.loads(exported.text)["session"]["id"] == session_id
    # The seller sees the operator's answer by polling, and the polling stops once resumed.
    assert "Oi! Vou gerar o token com você." in polled.text and "Especialista" in polled.text
    assert 'hx-swap-oob="true"' in polled.text
    assert resumed.status_code == 303
    assert "hx-trigger" not in after.text.split("</ol>")[0]
    handle = next(op for name, op in with_agent.calls if name == "TakeOverSession")
    assert handle.startswith("operador-") and "@" not in handle


async def test_the_operator_queue_is_paged(console: Console, with_agent: FakeAgent) -> None:
    with_agent.page = 1
    await console.accounts.create_user("ops@trackai.com.br", "operator", None, PASSWORD)
    sessions = []
    for email in ("a@loja.com.br", "b@loja.com.br"):
        await console.seller(email)
        async with console.client() as seller:
            await sign_in(seller, email)
            session_id = await _open_chat(seller)
            token = await csrf_of(seller, "/assistente")
            await seller.post(
                "/assistente/especialista",
                data={"sessao": session_id, "csrf_token": token},
                headers={"HX-Request": "true"},
            )
            sessions.append(session_id)
    async with console.client() as ops:
        await sign_in(ops, "ops@trackai.com.br")
        first = await ops.get("/operador/escalonamentos")
        link = re.search(r'href="(/operador/escalonamentos\?pagina=[^"]+)"', first.text)
        assert link, first.text
        second = await ops.get(link.group(1))
        # The conversation of the second page's escalation opens (found across pages).
        view = await ops.get(f"/operador/conversas/{sessions[1]}")
    assert f'data-session="{sessions[0]}"' in first.text
    assert f'data-session="{sessions[1]}"' not in first.text
    assert f'data-session="{sessions[1]}"' in second.text
    assert "Próxima página" not in second.text
    assert view.status_code == 200
