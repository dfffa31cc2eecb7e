"""The assistant's chat panel and the operators' escalation queue in Debian's Chromium, against
real processes: the console, the agent on the sandbox LLM fake (scripted), the provisioner on the
Meta fake. A seller chats (the model's answer streams in, the tool's verdict is a card), reloads
and finds the same conversation, hits three consecutive model failures and is told a specialist
will continue; an operator takes the session from the queue and answers, and the seller's panel
shows the answer without a reload. Another seller presses "Falar com um especialista".
Screenshots at desktop and 360 px go to tests/artifacts/console/ (git-ignored): look at them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page

from tests.e2e.conftest import ServiceProcess, Stack
from tests.e2e.test_console import ARTIFACTS, PASSWORD, SIZES, VENDOR, _tenant, shot, trackai
from tests.e2e.test_console import browser as chromium  # noqa: F401  (the fixture)
from trackai_sandbox.llm import DEMO_KEY as LLM_KEY
from trackai_sandbox.llm import build_app as build_llm
from trackai_sandbox.server import BackgroundServer
from trackai_sandbox.settings import SandboxSettings
from trackai_sandbox.testing import MetaSandboxClient

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(300)]

SELLER = "dona@lojadaana.com.br"
SELLER_B = "dono@lojadobruno.com.br"
OPERATOR = "suporte@trackai.com.br"
#: Nothing listens there: the console's other read APIs are not needed by these pages.
NOWHERE = "127.0.0.1:9"
ANSWER = (
    "Seu token do Meta está válido e lê o pixel 1234567890. Agora vamos conferir o webhook do "
    "seu checkout: abra o painel da Kiwify e cole a URL que eu vou indicar."
)


@dataclass
class AgentStack:
    console: ServiceProcess
    llm: httpx.Client
    tenant_a: str
    tenant_b: str

    def script(self, *steps: dict[str, Any]) -> None:
        self.llm.post("/_sandbox/script", json={"steps": list(steps)}).raise_for_status()


@pytest.fixture
def agent_stack(stack: Stack, meta: tuple[str, MetaSandboxClient]) -> Iterator[AgentStack]:
    assert (VENDOR / "htmx.min.js").exists(), "run `make console-assets` first"
    with contextlib.ExitStack() as servers:
        llm = servers.enter_context(BackgroundServer(build_llm(SandboxSettings())))
        llm_http = servers.enter_context(httpx.Client(base_url=llm.base_url, timeout=5))
        stack.env.update(
            META_GRAPH_URL=meta[0],
            INGESTION_GRPC_TARGET=NOWHERE,
            MATCHER_GRPC_TARGET=NOWHERE,
            DISPATCHER_GRPC_TARGET=NOWHERE,
        )
        provisioner = stack.start("provisioner")
        stack.wait_ready(provisioner, timeout=150)
        stack.env["PROVISIONER_GRPC_TARGET"] = f"127.0.0.1:{provisioner.grpc_port}"
        tenant_a, tenant_b = _tenant(stack, "loja-da-ana"), _tenant(stack, "loja-do-bruno")
        agent = stack.start(
            "agent",
            AGENT_LLM_BASE_URL=f"{llm.base_url}/v1",
            AGENT_LLM_API_KEY=LLM_KEY,
            AGENT_LLM_MODEL="sandbox",
        )
        stack.wait_ready(agent, timeout=150)
        stack.env["AGENT_GRPC_TARGET"] = f"127.0.0.1:{agent.grpc_port}"
        console = stack.start("console")
        stack.wait_ready(console, timeout=150)
        for email, role, tenant in (
            (SELLER, "seller", tenant_a),
            (SELLER_B, "seller", tenant_b),
            (OPERATOR, "operator", None),
        ):
            scope = ["--tenant", tenant] if tenant else []
            trackai(console, stack, "user", "create", "--email", email, "--role", role,
                    *scope, "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
        yield AgentStack(console, llm_http, tenant_a, tenant_b)


async def _sign_in(browser: Browser, console: ServiceProcess, email: str, size: str) -> Page:
    context = await browser.new_context(viewport=SIZES[size], locale="pt-BR")
    page = await context.new_page()
    await page.goto(console.http + "/entrar")
    await page.fill("#email", email)
    await page.fill("#senha", PASSWORD)
    await page.click("button[type=submit]")
    await page.get_by_role("heading", name="Visão geral").wait_for(timeout=90_000)
    return page


async def _viewport_shot(page: Page, name: str) -> None:
    """The visible part only: a full-page capture resizes the page, which resets the scroll of
    the chat's log (the latest entries would not be in the picture)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


async def _say(page: Page, text: str) -> None:
    before = await page.locator("#agent-log > li").count()
    await page.fill("#agent-text", text)
    await page.get_by_role("button", name="Enviar", exact=True).click()
    # The user's bubble, then at least one answer, and the form is free again.
    await page.wait_for_function(
        "n => document.querySelectorAll('#agent-log > li').length > n + 1",
        arg=before,
    )
    await page.wait_for_selector("#agent-form:not([aria-busy])")


async def test_seller_chats_escalates_and_an_operator_answers(
    agent_stack: AgentStack,
    chromium: Browser,  # noqa: F811
) -> None:
    console = agent_stack.console
    agent_stack.script(
        {"tool_calls": [{"name": "validate_meta_token", "arguments": {}}]},
        {"content": ANSWER},
    )
    seller = await _sign_in(chromium, console, SELLER, "desktop")
    await seller.get_by_role("link", name="Assistente").click()
    log = seller.locator("#agent-log")
    await log.get_by_text("Sou o assistente de configuração").wait_for()
    await _say(seller, "começar")
    card = log.locator("li.agent-card[data-tool=validate_meta_token]")
    await card.wait_for()
    assert "OK" in await card.locator(".agent-badge").inner_text()
    assert "Token do Meta" in await card.inner_text()
    assert "Próximo passo:" in await card.inner_text()
    answer = log.locator("li.agent-assistant", has_text="Agora vamos conferir o webhook")
    await answer.wait_for()
    # It was written in the bubble piece by piece (the model's stream, relayed by the agent).
    assert int(await answer.get_attribute("data-streamed") or 0) > 5
    assert await seller.locator(".agent-streaming").count() == 0
    assert await seller.inner_text("#agent-step") == "Webhook do checkout"
    await _viewport_shot(seller, "assistente-desktop")

    # Another device at 360 px resumes the same conversation.
    phone = await _sign_in(chromium, console, SELLER, "celular")
    await phone.goto(console.http + "/assistente")
    await phone.locator("#agent-log").get_by_text("Agora vamos conferir o webhook").wait_for()
    assert await phone.locator("li.agent-card").count() == 1
    await shot(phone, "assistente-celular")

    # Three consecutive model failures hand the session to a specialist.
    agent_stack.script(*[{"error": {"status": 500, "message": "The server had an error"}}] * 3)
    for text in ("e agora?", "tente de novo", "mais uma vez"):
        await _say(seller, text)
    notice = seller.get_by_text("Um especialista do Track AI vai continuar esta conversa.")
    await notice.wait_for()
    await seller.locator("#agent-log[hx-trigger]").wait_for()  # now waiting for the operator
    assert await seller.get_by_role("button", name="Falar com um especialista").count() == 0
    await _viewport_shot(seller, "assistente-escalado-desktop")

    # The operator's queue: tenant, step, the three failures, the suggested fix.
    ops = await _sign_in(chromium, console, OPERATOR, "desktop")
    await ops.get_by_role("link", name="Especialistas").click()
    item = ops.locator(f"li.escalation:has-text('{agent_stack.tenant_a}')")
    await item.wait_for()
    text = await item.inner_text()
    assert "Loja-Da-Ana" in text  # the tenant's name from the registry, next to its id
    assert "3 falhas seguidas" in text and "Webhook do checkout" in text
    assert text.count("o modelo respondeu HTTP 500") == 3
    await shot(ops, "especialistas-desktop")
    await item.get_by_role("button", name="Assumir").click()
    await ops.get_by_text("Você assumiu a conversa.").wait_for()
    await ops.fill(
        "#operator-text", "Oi, Ana! Sou o Carlos, do suporte. Vou conferir o webhook com você."
    )
    await ops.get_by_role("button", name="Enviar ao vendedor").click()
    await ops.get_by_text("Mensagem enviada ao vendedor.").wait_for()
    await shot(ops, "especialista-conversa-desktop")

    # The seller's open panel shows the answer without a reload.
    await (
        seller.locator("li.agent-operator")
        .get_by_text("Sou o Carlos, do suporte")
        .wait_for(timeout=30_000)
    )
    # ...scrolled to it (the log follows new entries when the reader was at its end).
    await seller.wait_for_function(
        "() => { const l = document.getElementById('agent-log');"
        " return l.scrollHeight - l.scrollTop - l.clientHeight < 8; }"
    )
    await _viewport_shot(seller, "assistente-especialista-desktop")
    await phone.reload()
    await phone.locator("li.agent-operator").get_by_text("Sou o Carlos").wait_for()
    await shot(phone, "assistente-especialista-celular")
    ops_phone = await _sign_in(chromium, console, OPERATOR, "celular")
    await ops_phone.goto(console.http + "/operador/escalonamentos")
    await ops_phone.locator("li.escalation").first.wait_for()
    await shot(ops_phone, "especialistas-celular")


async def test_seller_asks_for_a_specialist(
    agent_stack: AgentStack,
    chromium: Browser,  # noqa: F811
) -> None:
    console = agent_stack.console
    seller = await _sign_in(chromium, console, SELLER_B, "celular")
    await seller.goto(console.http + "/assistente")
    await seller.locator("#agent-log").get_by_text("Sou o assistente").wait_for()
    await seller.get_by_role("button", name="Falar com um especialista").click()
    await seller.get_by_text("chamei um especialista do Track AI").wait_for()
    await seller.get_by_text("Um especialista do Track AI vai continuar esta conversa.").wait_for()
    await shot(seller, "assistente-pedido-celular")

    ops = await _sign_in(chromium, console, OPERATOR, "desktop")
    await ops.goto(console.http + "/operador/escalonamentos")
    item = ops.locator(f"li.escalation:has-text('{agent_stack.tenant_b}')")
    await item.wait_for()
    assert "O vendedor pediu para falar com um especialista" in await item.inner_text()
    assert "nenhuma (pedido do vendedor)" in await item.inner_text()
