"""The console's setup wizard in Debian's Chromium against the real services: provisioner (on the
Meta, Cloudflare, Stape and GTM fakes), ingestion, the agent and the console as processes. A
seller registers the company and funnel, saves the Kiwify secret, watches "aguardando o primeiro
webhook" turn green when a signed Kiwify test webhook arrives, closes the wizard and resumes it,
validates the Meta token, provisions with each step's state arriving live (no reload), copies the
snippet, is refused a publish before the test event (by the provisioner), sends the test event
and publishes as the named approver. Screenshots go to tests/artifacts/console/ (look at them)."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import uuid

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page

from tests.e2e.conftest import ROOT, TOKEN, ServiceProcess, Stack
from tests.e2e.test_console import PASSWORD, SELLER, SIZES, VENDOR, browser, shot, trackai
from tests.e2e.test_setup_agent import KIWIFY_TEST, KIWIFY_TOKEN, PIXEL_ID, fakes
from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as prov_grpc
from trackai_kit.grpc import client_channel

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(300)]
__all__ = ["browser", "fakes"]  # fixtures shared with the other e2e modules

TEST_CODE = "TEST4242"


def _tenant(stack: Stack) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "trackai_cli.main", "tenant", "create", "--name", "Loja",
         "--slug", "loja-da-ana", "--json"],
        cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["id"])


async def _sign_in(browser: Browser, console: ServiceProcess, size: str) -> Page:
    context = await browser.new_context(viewport=SIZES[size], locale="pt-BR")
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console.http)
    page = await context.new_page()
    await page.goto(console.http + "/entrar")
    await page.fill("#email", SELLER)
    await page.fill("#senha", PASSWORD)
    await page.click("button[type=submit]")
    await page.get_by_role("heading", name="Visão geral").wait_for(timeout=90_000)
    return page


def _kiwify_test_webhook(url: str) -> None:
    """What Kiwify's "Enviar teste" sends: its test payload signed with the token."""
    raw = KIWIFY_TEST.read_bytes()
    signature = hmac.new(KIWIFY_TOKEN.encode(), raw, hashlib.sha1).hexdigest()
    sent = httpx.post(url, content=raw, params={"signature": signature},
                      headers={"Content-Type": "application/json"}, timeout=10)  # fmt: skip
    assert sent.status_code == 200, sent.text


# Records, in the page, the webhook statuses the console's stream delivers to this tenant.
WATCH_STATUS = """() => {
  window.__webhooks = [];
  const source = new EventSource("/eventos/ao-vivo");
  source.addEventListener("status", (event) => {
    const update = JSON.parse(event.data);
    if (update.entity === "webhook") window.__webhooks.push(update.entity_id);
  });
}"""

# Records, in the page, every state the provisioning list shows (htmx swaps #etapas in place).
WATCH_RUN = """() => {
  window.__seen = [];
  window.__loaded = performance.timeOrigin;
  const note = () => {
    const box = document.getElementById("etapas");
    if (!box) return;
    const state = (document.getElementById("situacao") || {}).textContent || "";
    const done = box.querySelectorAll(".saga-succeeded, .saga-skipped").length;
    const last = window.__seen[window.__seen.length - 1];
    if (!last || last.state !== state || last.done !== done) window.__seen.push({state, done});
  };
  new MutationObserver(note).observe(document.body, {subtree: true, childList: true});
  note();
}"""


async def test_seller_runs_the_wizard_to_publish(
    stack: Stack, fakes: dict[str, str], browser: Browser, database_url: str
) -> None:
    assert (VENDOR / "htmx.min.js").exists(), "run `make console-assets` first"
    stack.env.update(fakes)
    provisioner = stack.start("provisioner")
    stack.wait_ready(provisioner, timeout=150)
    stack.env["PROVISIONER_GRPC_TARGET"] = f"127.0.0.1:{provisioner.grpc_port}"
    ingestion = stack.start("ingestion")
    stack.wait_ready(ingestion, timeout=150)
    stack.env["INGESTION_GRPC_TARGET"] = f"127.0.0.1:{ingestion.grpc_port}"
    agent = stack.start("agent", AGENT_WEBHOOK_BASE_URL=ingestion.http)
    stack.wait_ready(agent, timeout=150)
    stack.env["AGENT_GRPC_TARGET"] = f"127.0.0.1:{agent.grpc_port}"
    console = stack.start("console")
    stack.wait_ready(console, timeout=150)
    tenant = _tenant(stack)
    trackai(console, stack, "user", "create", "--email", SELLER, "--role", "seller",
            "--tenant", tenant, "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip

    page = await _sign_in(browser, console, "desktop")
    await page.get_by_role("link", name="Configuração").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_role("heading", name="Empresa e funil").wait_for()

    # 1. Company and funnel: the form says what is wrong, in Portuguese.
    await page.fill("#empresa", "")
    await page.fill("#pagina", "lojadaana.com.br")
    await page.get_by_role("button", name="Salvar e continuar").click()
    await page.locator("#erro-pagina").wait_for()
    assert "começando com https://" in await page.inner_text("#erro-pagina")
    assert "Informe o nome da empresa" in await page.inner_text("#erro-empresa")
    await shot(page, "configuracao-1-erros-desktop")
    await page.fill("#empresa", "Loja da Ana")
    await page.fill("#funil", "Curso de Março")
    await page.fill("#pagina", "https://lojadaana.com.br/curso")
    await page.fill("#dominios", "pay.kiwify.com.br")
    await page.get_by_role("button", name="Salvar e continuar").click()

    # 2. Gateway: the exact URL, then the live wait that turns green on a verified webhook.
    await dialog.get_by_role("heading", name="Checkout e webhook").wait_for()
    await page.select_option("#gateway", "kiwify")
    await page.fill("#segredo", KIWIFY_TOKEN)
    await page.get_by_role("button", name="Salvar segredo").click()
    waiting = page.get_by_text("Aguardando o primeiro webhook")
    await waiting.wait_for()
    url = (await page.inner_text("#url-kiwify")).strip()
    assert url == f"{ingestion.http}/api/v1/webhooks/kiwify/{tenant}"
    assert KIWIFY_TOKEN not in await page.content()
    await shot(page, "configuracao-2-aguardando-webhook-desktop")
    await page.evaluate(WATCH_STATUS)
    _kiwify_test_webhook(url)
    # The signal: ingestion's status for the test payload reached this browser over SSE.
    await page.wait_for_function("window.__webhooks.includes('kiwify')", timeout=30_000)
    await page.get_by_text("Webhook verificado recebido.").wait_for(timeout=30_000)
    await shot(page, "configuracao-2-webhook-verificado-desktop")

    # Closed and resumed: the position comes back from the backend, not the browser.
    await page.get_by_role("link", name="Fechar e continuar depois").click()
    await page.get_by_role("heading", name="Visão geral").wait_for()
    assert 'parou em "Checkout e webhook"' in await page.inner_text("main")
    await page.get_by_role("link", name="Continuar a configuração").click()
    await dialog.get_by_role("heading", name="Checkout e webhook").wait_for()
    await page.get_by_role("link", name="Continuar: pixel e token do Meta").click()

    # 3. Meta pixel and token, validated by the agent against the Meta fake.
    await dialog.get_by_role("heading", name="Pixel e token do Meta").wait_for()
    await page.fill("#pixel", PIXEL_ID)
    await page.fill("#token", "sandbox-token")
    await page.fill("#codigo_teste", TEST_CODE)
    await page.get_by_role("button", name="Salvar e validar").click()

    # 4. Provisioning: each step's state arrives over the status stream, without a reload.
    await dialog.get_by_role("heading", name="Provisionamento").wait_for()
    assert "não expira" in await page.inner_text(".notice")
    await page.evaluate(WATCH_RUN)
    await page.get_by_role("button", name="Provisionar").click()
    await page.wait_for_load_state()
    await page.evaluate(WATCH_RUN)  # the POST redirected to a fresh page: watch that one
    await page.get_by_text("Pronto para revisão").wait_for(timeout=120_000)
    seen = await page.evaluate("window.__seen")
    assert seen[-1] == {"state": "Pronto para revisão", "done": 12}, seen
    assert len({s["done"] for s in seen}) >= 3, seen  # steps turned green one after another
    await shot(page, "configuracao-4-provisionado-desktop")
    for provider in ("Cloudflare", "Stape", "Google Tag Manager"):
        assert await page.get_by_role("heading", name=provider).count() == 1

    # 5. The snippet per platform, with a copy button.
    await page.get_by_role("link", name="Continuar: código da página").click()
    await dialog.get_by_role("heading", name="Código da página").wait_for()
    html = (await page.inner_text("#codigo-html")).strip()
    await page.locator("button[data-copy='#codigo-html']").click()
    assert (await page.evaluate("navigator.clipboard.readText()")).strip() == html
    await shot(page, "configuracao-5-codigo-desktop")
    await page.get_by_role("link", name="Continuar: evento de teste").click()

    # 7 before 6: the provisioner refuses a publish before a successful test event.
    await dialog.get_by_role("heading", name="Evento de teste").wait_for()
    csrf = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    early = await page.request.post(
        console.http + "/configuracao/publicar",
        form={"confirmo": "sim", "csrf_token": csrf or ""},
        max_redirects=0,
    )
    assert early.status == 409
    assert "A publicação foi recusada" in await early.text()

    # 6. The test event reaches the Meta fake with the funnel's test code.
    await page.get_by_role("button", name="Enviar evento de teste").click()
    await page.get_by_text("Evento de teste recebido pelo Meta").wait_for()
    await shot(page, "configuracao-6-teste-desktop")

    # 7. Review and publish, approved by the signed-in seller.
    await page.get_by_role("link", name="Continuar: revisão e publicação").click()
    await dialog.get_by_role("heading", name="Revisão e publicação").wait_for()
    await page.get_by_role("button", name="Aprovar e publicar").click()
    await page.locator("#erro-confirmo").wait_for()
    await page.get_by_label("Revisei a configuração e aprovo a publicação.").check()
    await page.get_by_role("button", name="Aprovar e publicar").click()
    await page.get_by_text("Publicado! O rastreamento está no ar.").wait_for()
    await shot(page, "configuracao-7-publicado-desktop")

    conn = await asyncpg.connect(database_url)
    try:
        approver = await conn.fetchval(
            "SELECT approved_by FROM console.setup_wizards WHERE tenant_id = $1",
            uuid.UUID(tenant),
        )
        user_id = await conn.fetchval(
            "SELECT id FROM console.users WHERE tenant_id = $1", uuid.UUID(tenant)
        )
    finally:
        await conn.close()
    assert approver == user_id
    channel = client_channel(stack.env["PROVISIONER_GRPC_TARGET"], TOKEN)
    try:
        run = (
            await prov_grpc.ProvisioningServiceStub(channel).GetProvisioningRun(
                prov.GetProvisioningRunRequest(
                    funnel=prov.FunnelRef(tenant_ref=tenant, funnel_slug="curso-de-marco")
                )
            )
        ).run
    finally:
        await channel.close()
    assert run.run_status == prov.RUN_STATUS_PUBLISHED
    assert run.approved_by == f"console:{user_id}" and run.test_event_id

    # The same wizard on a phone (360 px), resumed at its last step.
    phone = await _sign_in(browser, console, "celular")
    await phone.goto(console.http + "/configuracao")
    await phone.get_by_text("Aprovado por você").wait_for()
    assert await phone.evaluate("document.documentElement.scrollWidth") <= 360
    await shot(phone, "configuracao-7-publicado-celular")
    await phone.goto(console.http + "/configuracao/provisionamento")
    await shot(phone, "configuracao-4-provisionado-celular")
