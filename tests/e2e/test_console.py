"""The console in Debian's Chromium and over plain HTTP, as real processes on free ports against a
migrated test database: the console (pages + its gRPC account API), and for the events pages the
whole pipeline (provisioner, ingestion, matcher, dispatcher, the Meta sandbox fake). Accounts are
created with `trackai user create` as an operator would. Screenshots go to
tests/artifacts/console/ (git-ignored): look at them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright

from tests.e2e.conftest import ROOT, ServiceProcess, Stack
from tests.e2e.test_purchase_flow import _kiwify_webhook
from trackai.common.v1 import events_pb2 as common_pb
from trackai_kit.amqp import AmqpClient
from trackai_kit.identity import event_id
from trackai_kit.pii import email_hash
from trackai_kit.settings import AmqpSettings
from trackai_kit.topology import STATUS_EXCHANGE
from trackai_sandbox.meta import build_app as build_meta
from trackai_sandbox.server import BackgroundServer
from trackai_sandbox.settings import SandboxSettings
from trackai_sandbox.testing import MetaSandboxClient
from trackai_testing.browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ARTIFACTS = ROOT / "tests" / "artifacts" / "console"
VENDOR = ROOT / "services" / "console" / "src" / "trackai_console" / "static" / "vendor"
PASSWORD = "senha-da-loja-2026"
SELLER = "dona@lojadaana.com.br"
TENANT = "8f14e45f-ceea-467f-a9e5-3b2f5e2c4a10"
SIZES = {"celular": {"width": 360, "height": 740}, "desktop": {"width": 1280, "height": 800}}


def trackai(console: ServiceProcess, stack: Stack, *args: str, stdin: str = "") -> str:
    env = {**stack.env, "CONSOLE_GRPC_TARGET": f"127.0.0.1:{console.grpc_port}"}
    done = subprocess.run(
        [sys.executable, "-m", "trackai_cli.main", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def console(stack: Stack) -> ServiceProcess:
    assert (VENDOR / "htmx.min.js").exists(), "run `make console-assets` first"
    proc = stack.start("console")
    stack.wait_ready(proc, timeout=150)
    trackai(proc, stack, "user", "create", "--email", SELLER, "--role", "seller",
            "--tenant", TENANT, "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    return proc


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def test_seller_signs_in_and_out(console: ServiceProcess, browser: Browser) -> None:
    for size, viewport in SIZES.items():
        context = await browser.new_context(viewport=viewport, locale="pt-BR")
        page = await context.new_page()
        await page.goto(console.http + "/")
        assert page.url.endswith("/entrar?proximo=/")
        await page.fill("#email", SELLER)
        await page.fill("#senha", "senha-errada-123")
        await page.click("button[type=submit]")
        await page.get_by_role("alert").wait_for()
        assert await page.get_by_role("alert").inner_text() == "E-mail ou senha incorretos."
        await shot(page, f"entrar-erro-{size}")

        await page.fill("#senha", PASSWORD)
        await page.click("button[type=submit]")
        await page.get_by_role("heading", name="Visão geral").wait_for()
        assert "Vendedor" in await page.inner_text("header")
        # Alone, without the other services: the overview says the numbers are unavailable.
        assert "não estão disponíveis agora" in await page.inner_text("main")
        assert await page.evaluate("typeof htmx") == "object"  # served from our static dir
        await shot(page, f"visao-geral-{size}")

        await page.get_by_role("button", name="Sair").click()
        await page.wait_for_url("**/entrar")
        await page.goto(console.http + "/")
        assert "/entrar" in page.url
        await context.close()
    assert os.path.getsize(ARTIFACTS / "visao-geral-celular.png") > 0


# ── The events pages against the real services ──────────────────────────────────────────────

KIWIFY_TOKEN = "e2e-kiwify-token"
PIXEL_ID = "1234567890"
SELLER_B = "dono@lojadobruno.com.br"


@dataclass
class Pipeline:
    stack: Stack
    console: ServiceProcess
    ingestion: ServiceProcess
    tenant_a: str
    tenant_b: str
    amqp_url: str
    amqp_prefix: str
    meta: MetaSandboxClient
    database_url: str


def _cli_json(stack: Stack, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "trackai_cli.main", *args, "--json"],
        cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _tenant(stack: Stack, slug: str) -> str:
    created = _cli_json(stack, "tenant", "create", "--name", slug.title(), "--slug", slug,
                        "--domain", "loja.example.com")  # fmt: skip
    tenant_id = str(created["id"])
    _cli_json(stack, "tenant", "set-gateway", tenant_id, "--gateway", "kiwify",
              "--secret", KIWIFY_TOKEN)  # fmt: skip
    _cli_json(stack, "tenant", "set-meta", tenant_id, "--pixel-id", PIXEL_ID,
              "--access-token", "sandbox-token")  # fmt: skip
    # The page views name it (the snippet's `funnel`); a webhook's sale gets its click's funnel.
    _cli_json(stack, "funnel", "create", tenant_id, "--name", "Curso", "--slug", "curso")
    return tenant_id


@pytest.fixture
def pipeline(
    stack: Stack, amqp_url: str, amqp_prefix: str, database_url: str
) -> Iterator[Pipeline]:
    assert (VENDOR / "htmx.min.js").exists(), "run `make console-assets` first"
    meta = BackgroundServer(build_meta(SandboxSettings())).start()
    meta_http = httpx.Client(base_url=meta.base_url, timeout=5)
    try:
        stack.env["META_GRAPH_URL"] = meta.base_url
        provisioner = stack.start("provisioner")
        stack.wait_ready(provisioner, timeout=150)
        stack.env["PROVISIONER_GRPC_TARGET"] = f"127.0.0.1:{provisioner.grpc_port}"
        tenant_a, tenant_b = _tenant(stack, "loja-da-ana"), _tenant(stack, "loja-do-bruno")
        apis = {name: stack.start(name) for name in ("ingestion", "matcher", "dispatcher")}
        workers = [
            stack.start("matcher", "consume", grpc=False),
            # A short retry ladder, so an event Meta keeps failing is dead within seconds.
            stack.start(
                "dispatcher",
                "consume",
                grpc=False,
                DISPATCHER_BATCH_DEADLINE_MS="50",
                DISPATCHER_RETRY_DELAYS_MS="200,200",
            ),
        ]
        for proc in [*apis.values(), *workers]:
            stack.wait_ready(proc, timeout=150)
        for name, proc in apis.items():
            stack.env[f"{name.upper()}_GRPC_TARGET"] = f"127.0.0.1:{proc.grpc_port}"
        console = stack.start("console")
        stack.wait_ready(console, timeout=150)
        for email, tenant in ((SELLER, tenant_a), (SELLER_B, tenant_b)):
            trackai(console, stack, "user", "create", "--email", email, "--role", "seller",
                    "--tenant", tenant, "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
        yield Pipeline(
            stack,
            console,
            apis["ingestion"],
            tenant_a,
            tenant_b,
            amqp_url,
            amqp_prefix,
            MetaSandboxClient(meta_http),
            database_url,
        )
    finally:
        meta_http.close()
        meta.stop()


def _post_sale(pipeline: Pipeline, tenant_id: str, order_id: str, session_id: str) -> str:
    """The tracking script's page view with our session, then Kiwify's signed approved sale."""
    with httpx.Client(base_url=pipeline.ingestion.http, timeout=10) as http:
        hit = http.post(
            f"/api/v1/collect/{tenant_id}",
            headers={
                "Origin": "https://loja.example.com",
                "User-Agent": "Mozilla/5.0 (E2E) Chrome/126",
            },
            json={
                "type": "page_view",
                "session_id": session_id,
                "event_id": "pv" + uuid.uuid4().hex[:20],
                "page_url": "https://loja.example.com/curso?utm_source=facebook",
                "funnel": "curso",
            },
        )
        assert hit.status_code == 204, hit.text
        body = _kiwify_webhook(order_id)
        payload = json.loads(body)
        payload["TrackingParameters"]["sck"] = session_id
        raw = json.dumps(payload).encode()
        signature = hmac.new(KIWIFY_TOKEN.encode(), raw, hashlib.sha1).hexdigest()
        response = http.post(
            f"/api/v1/webhooks/kiwify/{tenant_id}?signature={signature}",
            content=raw,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["conversion_id"])


async def _sign_in(browser: Browser, pipeline: Pipeline, size: str) -> Page:
    context = await browser.new_context(viewport=SIZES[size], locale="pt-BR")
    page = await context.new_page()
    await page.goto(pipeline.console.http + "/entrar")
    await page.fill("#email", SELLER)
    await page.fill("#senha", PASSWORD)
    await page.click("button[type=submit]")
    await page.get_by_role("heading", name="Visão geral").wait_for(timeout=90_000)
    return page


async def test_events_table_updates_live_and_explains_the_match(
    pipeline: Pipeline, browser: Browser
) -> None:
    page = await _sign_in(browser, pipeline, "desktop")
    await page.get_by_role("link", name="Eventos").click()
    await page.get_by_text("Nenhum evento neste filtro ainda.").wait_for()
    await page.wait_for_function("document.querySelector('[sse-connect]') !== null")
    # The live stream is open before the sale arrives (the page never reloads from here on).
    await page.wait_for_timeout(500)
    marker = await page.evaluate("window.__notReloaded = true")
    assert marker is True

    order_id = f"ana-{uuid.uuid4().hex[:8]}"
    _post_sale(pipeline, pipeline.tenant_a, order_id, "taConsoleE2Esession0001")
    row = page.locator("tr", has_text=order_id)
    await row.get_by_text("Enviado à Meta").wait_for(timeout=60_000)
    assert await page.evaluate("window.__notReloaded === true")
    await shot(page, "eventos-ao-vivo-desktop")

    # A burst: every sale's last status shows without a reload (a throttled refresh dropped the
    # statuses that arrived inside its window, and nothing read them again until the next one).
    burst = [f"ana-{uuid.uuid4().hex[:8]}" for _ in range(4)]
    for n, burst_order in enumerate(burst):
        _post_sale(pipeline, pipeline.tenant_a, burst_order, f"taConsoleE2Eburst{n:05d}")
    for burst_order in burst:
        burst_row = page.locator("tr", has_text=burst_order)
        await burst_row.get_by_text("Enviado à Meta").wait_for(timeout=60_000)
    assert await page.evaluate("window.__notReloaded === true")

    # Each filter is applied by the service that owns it: the delivery status by the dispatcher,
    # the stage and the funnel (the click's: a webhook names none) by the matcher.
    funnel = _cli_json(pipeline.stack, "funnel", "list", pipeline.tenant_a)[0]["id"]
    with _signed_in_client(pipeline, SELLER) as ana:
        for query, shown in (
            ("status=sent", True),
            ("status=dead", False),
            ("status=matched", False),
            ("estagio=deterministic", True),
            ("estagio=probabilistic", False),
            (f"funil={funnel}", True),
            (f"funil={uuid.uuid4()}", False),
            (f"status=sent&estagio=deterministic&funil={funnel}&gateway=kiwify", True),
            ("status=sent&gateway=hotmart", False),
            (f"estagio=deterministic&funil={funnel}&gateway=hotmart", False),
        ):
            listed = ana.get(f"/eventos?{query}")
            assert listed.status_code == 200, query
            assert (f">{order_id}</a>" in listed.text) is shown, query
            # The "Atribuído" filter says what it lists (the dispatcher's pending events).
            assert ('id="filtro-atribuido"' in listed.text) is (query == "status=matched")
    await page.select_option("#status", "sent")
    await page.select_option("#estagio", "deterministic")
    await page.get_by_role("button", name="Filtrar").click()
    await row.get_by_text("Enviado à Meta").wait_for()
    assert "status=sent" in page.url and "estagio=deterministic" in page.url
    await shot(page, "eventos-filtro-desktop")

    await row.get_by_role("link", name=order_id).click()
    await page.get_by_role("heading", name="Como a venda foi atribuída").wait_for()
    explanation = await page.inner_text("#atribuicao")
    # Our session id came back through the checkout's sck: a deterministic match, with its evidence.
    assert "Determinístico" in explanation and "sck\texact" in explanation
    assert "Pontuação\n1,00" in explanation
    attempts = await page.inner_text("#envios")
    assert "Aceito pela Meta" in attempts
    await shot(page, "evento-detalhe-desktop")

    # The sale counts in the EMQ page: today's bar is green (8+ is above the 6.0 line, drawn).
    await page.get_by_role("link", name="Qualidade (EMQ)").click()
    await page.get_by_text("Média dos últimos 7 dias").wait_for()
    # The text is parsed before the chart's scripts at the end of the page have run.
    await page.wait_for_function("window.Chart && Chart.getChart('emq-grafico')")
    chart = await page.evaluate(
        """() => {
            const c = Chart.getChart('emq-grafico');
            return {bars: c.data.datasets[0].data, colours: c.data.datasets[0].backgroundColor,
                    line: c.data.datasets[1].data};
        }"""
    )
    assert chart["bars"][-1] >= 6 and chart["colours"][-1] == "#1a7f37"
    assert set(chart["line"]) == {6.0} and len(chart["line"]) == 7
    await shot(page, "emq-desktop")

    mobile = await _sign_in(browser, pipeline, "celular")
    await mobile.goto(pipeline.console.http + "/eventos")
    await mobile.get_by_text(order_id).wait_for()
    await shot(mobile, "eventos-celular")
    await mobile.get_by_role("link", name=order_id).click()
    await mobile.get_by_role("heading", name="Como a venda foi atribuída").wait_for()
    await shot(mobile, "evento-detalhe-celular")
    await mobile.goto(pipeline.console.http + "/emq")
    await mobile.get_by_text("Média dos últimos 7 dias").wait_for()
    await shot(mobile, "emq-celular")


@contextlib.contextmanager
def _signed_in_client(pipeline: Pipeline, email: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=pipeline.console.http, timeout=30) as client:
        form = client.get("/entrar")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token
        signed = client.post(
            "/entrar", data={"email": email, "senha": PASSWORD, "csrf_token": token.group(1)}
        )
        assert signed.status_code == 303, signed.text
        yield client


async def _publish_status(pipeline: Pipeline, tenant_id: str, event_id: str) -> None:
    async with AmqpClient(AmqpSettings(url=pipeline.amqp_url, prefix=pipeline.amqp_prefix)) as amqp:
        update = common_pb.StatusUpdate(
            tenant_id=tenant_id,
            entity=common_pb.STATUS_ENTITY_DISPATCH,
            entity_id=event_id,
            status="sent",
        )
        await amqp.publish(
            f"dispatch.{tenant_id}",
            update.SerializeToString(),
            exchange=STATUS_EXCHANGE,
            message_id=uuid.uuid4().hex,
            message_type="trackai.common.v1.StatusUpdate",
        )


def _read_events(client: httpx.Client, path: str, want: int, found: list[str]) -> None:
    with client.stream("GET", path, timeout=httpx.Timeout(10, read=10)) as stream:
        kind = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            if line.startswith("data: ") and kind == "status":  # not the opening "ready"
                found.append(json.loads(line[6:])["entity_id"])
                if len(found) >= want:
                    return


async def test_a_seller_never_sees_another_tenants_events(pipeline: Pipeline) -> None:
    order_b = f"bruno-{uuid.uuid4().hex[:8]}"
    conversion_b = _post_sale(pipeline, pipeline.tenant_b, order_b, "taConsoleE2Esession0002")
    b = pipeline.tenant_b
    with _signed_in_client(pipeline, SELLER_B) as bruno:
        own = bruno.get(f"/eventos/{conversion_b}")
        assert own.status_code == 200 and order_b in own.text  # it exists, for its owner

    with _signed_in_client(pipeline, SELLER) as ana:
        # Every page and fragment, with and without a forged tenant in the URL.
        for path in (
            f"/eventos/{conversion_b}",
            f"/eventos/{conversion_b}?tenant={b}",
        ):
            response = ana.get(path)
            assert response.status_code == 404, path
            assert order_b not in response.text
        for path in (
            "/eventos",
            f"/eventos?tenant={b}",
            f"/eventos?tenant={b}&pedido={order_b}",
            f"/eventos/tabela?tenant={b}&pedido={order_b}",
            f"/eventos/tabela?tenant={b}&mais=1",
            "/",
        ):
            response = ana.get(path)
            assert response.status_code == 200, path
            # (The search box may echo the typed order id; no row, link or id of it appears.)
            assert f">{order_b}</a>" not in response.text, path
            assert conversion_b not in response.text, path

        # Live updates: Ana's stream, even asking for Bruno's tenant, carries only Ana's.
        found: list[str] = []
        reader = asyncio.get_running_loop().run_in_executor(
            None, _read_events, ana, f"/eventos/ao-vivo?tenant={b}", 1, found
        )
        await asyncio.sleep(1.5)  # the stream is subscribed
        await _publish_status(pipeline, b, "evento-do-bruno")
        await _publish_status(pipeline, pipeline.tenant_a, "evento-da-ana")
        await asyncio.wait_for(reader, 15)
        assert found == ["evento-da-ana"]


async def conn_user_id(database_url: str) -> str:
    """Ana's console account id (she is the only seller of tenant A)."""
    conn = await asyncpg.connect(database_url)
    try:
        return str(
            await conn.fetchval(
                "SELECT u.id FROM console.users u WHERE u.email_hash = $1", email_hash(SELLER)
            )
        )
    finally:
        await conn.close()


async def test_dead_event_is_replayed_from_the_dlq_page_and_sent(
    pipeline: Pipeline, browser: Browser
) -> None:
    # Meta answers 500 to everything: the event goes through its (short) retries and dies.
    pipeline.meta.add_fault("http_500", pixel_id=PIXEL_ID, count=None)
    order_id = f"dlq-{uuid.uuid4().hex[:8]}"
    _post_sale(pipeline, pipeline.tenant_a, order_id, "taConsoleE2Esession0003")
    expected = event_id(pipeline.tenant_a, "kiwify", order_id, "Purchase")

    page = await _sign_in(browser, pipeline, "desktop")
    row = page.locator(f"tr[data-event='{expected}']")
    for _ in range(120):
        await page.goto(pipeline.console.http + "/dlq")
        if await row.count():
            break
        await page.wait_for_timeout(500)
    assert "Tentativas esgotadas" in await row.inner_text()
    await shot(page, "dlq-desktop")

    # The cause is fixed; the seller replays the event (and confirms).
    pipeline.meta._call("DELETE", "/_sandbox/faults")  # the fake's control API
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await row.get_by_role("button", name="Reenviar").click()
    result = page.locator("#resultado")
    await result.wait_for()
    assert (await result.inner_text()).startswith("1 reenviado(s) para a Meta")
    await shot(page, "dlq-reenviado-desktop")

    deadline = asyncio.get_running_loop().time() + 60
    while not pipeline.meta.events(pixel_id=PIXEL_ID, event_id=expected):
        assert asyncio.get_running_loop().time() < deadline, "the replayed event never reached Meta"
        await asyncio.sleep(0.5)
    await page.goto(pipeline.console.http + f"/eventos?pedido={order_id}")
    await (
        page.locator("tr", has_text=order_id).get_by_text("Enviado à Meta").wait_for(timeout=30_000)
    )

    # Who replayed is recorded with the replay: the seller's console account id, no e-mail.
    conn = await asyncpg.connect(pipeline.database_url)
    try:
        who = await conn.fetchval("SELECT requested_by FROM dispatcher.dlq_replays")
    finally:
        await conn.close()
    ana = await conn_user_id(pipeline.database_url)
    assert who == f"console:{ana}"


async def test_overview_banners_show_what_to_fix(
    pipeline: Pipeline, browser: Browser, stack: Stack
) -> None:
    # Meta says the token expired: the destination's breaker opens at once. And a webhook
    # arrives signed with another secret: ingestion answers 401 and records which one.
    pipeline.meta.add_fault("token_expired", pixel_id=PIXEL_ID, count=None)
    _post_sale(
        pipeline, pipeline.tenant_a, f"brk-{uuid.uuid4().hex[:8]}", "taConsoleE2Esession0004"
    )
    with httpx.Client(base_url=pipeline.ingestion.http, timeout=10) as http:
        forged = http.post(
            f"/api/v1/webhooks/kiwify/{pipeline.tenant_a}?signature={'0' * 40}",
            content=_kiwify_webhook("forjado-1"),
            headers={"Content-Type": "application/json"},
        )
    assert forged.status_code == 401, forged.text

    page = await _sign_in(browser, pipeline, "desktop")
    banners = page.locator(".banner-action")
    for _ in range(120):
        await page.goto(pipeline.console.http + "/")
        text = " ".join(await banners.all_inner_texts())
        if "está pausado" in text and "recusado(s) na última hora" in text:
            break
        await page.wait_for_timeout(500)
    breaker = banners.filter(has_text="está pausado")
    assert f"pixel {PIXEL_ID}" in await breaker.inner_text()
    assert "Gerar token" in await breaker.inner_text()
    assert await breaker.get_by_role("link", name="Resolver").get_attribute("href") == (
        "/configuracao/meta"
    )
    refusal = banners.filter(has_text="recusado(s) na última hora")
    assert "1 webhook(s) da Kiwify" in await refusal.inner_text()
    assert "Apps → Webhooks" in await refusal.inner_text()
    await page.locator("#entrega").get_by_text("Envio pausado (disjuntor aberto)").wait_for()
    await shot(page, "visao-geral-alertas-desktop")
    mobile = await _sign_in(browser, pipeline, "celular")
    await mobile.goto(pipeline.console.http + "/")
    await mobile.locator(".banner-action").first.wait_for()
    await shot(mobile, "visao-geral-alertas-celular")

    # The other tenant's seller (same pixel id, another destination) sees none of it, even
    # with tenant A's id in the URL.
    context = await browser.new_context(viewport=SIZES["desktop"], locale="pt-BR")
    other = await context.new_page()
    await other.goto(pipeline.console.http + "/entrar")
    await other.fill("#email", SELLER_B)
    await other.fill("#senha", PASSWORD)
    await other.click("button[type=submit]")
    await other.get_by_role("heading", name="Visão geral").wait_for(timeout=90_000)
    await other.goto(pipeline.console.http + f"/?tenant={pipeline.tenant_a}")
    await other.locator("#entrega").wait_for()
    assert await other.locator(".banner-action").count() == 0
    assert PIXEL_ID not in await other.content()
    refused = await other.goto(pipeline.console.http + "/operador/tenants")
    assert refused is not None and refused.status == 404

    # The seller's quality page: the coverage of each parameter of what went to Meta.
    await page.goto(pipeline.console.http + "/emq")
    coverage = page.locator("#cobertura")
    await coverage.locator("tr[data-parameter='em']").wait_for()
    assert "Dos 1 evento(s)" in await coverage.inner_text()
    await shot(page, "emq-cobertura-desktop")

    # An operator sees both tenants' health; tenant A needs action (its breaker is open).
    trackai(pipeline.console, stack, "user", "create", "--email", "ops@trackai.com.br",
            "--role", "operator", "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    ops_context = await browser.new_context(viewport=SIZES["desktop"], locale="pt-BR")
    ops = await ops_context.new_page()
    await ops.goto(pipeline.console.http + "/entrar")
    await ops.fill("#email", "ops@trackai.com.br")
    await ops.fill("#senha", PASSWORD)
    await ops.click("button[type=submit]")
    await ops.get_by_role("heading", name="Visão geral").wait_for(timeout=90_000)
    await ops.get_by_role("link", name="Tenants").click()
    row_a = ops.locator(f"tr[data-tenant='{pipeline.tenant_a}']")
    await row_a.wait_for()
    assert "Precisa de ação" in await row_a.inner_text()
    assert "Envio pausado" in await row_a.inner_text()
    row_b = ops.locator(f"tr[data-tenant='{pipeline.tenant_b}']")
    assert "Precisa de ação" not in await row_b.inner_text()
    await shot(ops, "operador-tenants-desktop")
