"""The tracking script in headless Chromium against the real collect endpoint, a real provisioner
process (tenant registry) and PostgreSQL: fbc from the ad click, a stable session, decorated
checkout links, hashed leads and the same event_id as Python."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from playwright.async_api import Page, Route, async_playwright

from tests.e2e.conftest import TOKEN, Stack
from trackai.provisioner.v1 import provisioner_service_pb2 as pb
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as pb_grpc
from trackai_ingestion.bootstrap import record_browser_hit
from trackai_ingestion.entrypoints.collect import build_collect_router
from trackai_kit import migrations, pii
from trackai_kit.grpc import client_channel, local_dev_token
from trackai_kit.identity import event_id
from trackai_kit.tenant_config import RegistryClient, tenant_view_client
from trackai_testing.browser import CHROMIUM, CHROMIUM_ARGS
from trackai_testing.plugin import in_thread

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

# Chromium resolves every *.localhost name to the loopback and treats it as a secure context
# (crypto.subtle works over http), so the page and the collect endpoint are two real origins.
LANDING_HOST = "shop.localhost"
INGEST_HOST = "ingest.localhost"
EMAIL = "Joana.Souza@Example.com"
PHONE = "+55 (21) 99876-5432"


async def _serve(app: FastAPI) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # proxy_headers off: the collect router alone decides which X-Forwarded-For to believe.
    config = uvicorn.Config(
        app, log_config=None, access_log=False, proxy_headers=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return server, task, int(sock.getsockname()[1])


def _landing_app(script_tag: Callable[[], str]) -> FastAPI:
    app = FastAPI()

    def page(body: str) -> HTMLResponse:
        return HTMLResponse(
            f'<!doctype html><html><head><meta charset="utf-8">{script_tag()}</head>'
            f"<body>{body}</body></html>"
        )

    @app.get("/")
    async def landing() -> HTMLResponse:
        return page(
            '<a id="buy" href="https://pay.kiwify.com.br/AbC9xYz">Comprar</a>'
            '<a id="bio" href="https://go.perfectpay.com.br/PPU38?src=bio">Perfect Pay</a>'
            '<a id="blog" href="https://blog.example.org/post">Blog</a>'
            # The other platforms' checkout hosts, as their payloads show them.
            '<a id="monetizze" href="https://app.monetizze.com.br/checkout/KAL215862">M</a>'
            '<a id="braip" href="https://ev.braip.com/checkout/pla5k9d1">B</a>'
            '<a id="ticto" href="https://checkout.ticto.app/O84ABA07F">T</a>'
            '<a id="greenn" href="https://payfast.greenn.com.br/12345">G</a>'
            '<form id="lead" action="/obrigado" method="get">'
            '<input type="email" name="email"><input type="tel" name="whatsapp">'
            '<button id="send" type="submit">Enviar</button></form>'
        )

    @app.get("/obrigado")
    async def thanks() -> HTMLResponse:
        return page("<p>Obrigado</p>")

    @app.get("/next")
    async def next_page() -> HTMLResponse:
        # Added after load: the MutationObserver decorates it.
        return page(
            '<div id="late"></div><script>setTimeout(function(){document.getElementById("late")'
            '.innerHTML=\'<a id="late-buy" href="https://pay.kiwify.com.br/Late1">x</a>\'},50)'
            "</script>"
        )

    return app


@dataclass
class Env:
    tenant_id: str
    pool: asyncpg.Pool
    landing: str
    open_page: Callable[[], Awaitable[Page]]


async def _wait_rows(
    pool: asyncpg.Pool, where: str, *args: Any, count: int = 1, timeout_s: float = 10.0
) -> list[asyncpg.Record]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await pool.fetch(
            f"SELECT * FROM ingestion.events WHERE {where} ORDER BY received_at",
            *args,
        )
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.1)


@pytest_asyncio.fixture(loop_scope="session")
async def env(
    empty_database_url: str, amqp_url: str, amqp_prefix: str, tmp_path: Path, pg_pool: Any
) -> AsyncIterator[Env]:
    # Only the two schemas this test uses, so it does not depend on other services' migrations.
    for service in ("provisioner", "ingestion"):
        in_thread(partial(migrations.upgrade, service, empty_database_url))
    stack = Stack(
        {
            **os.environ,
            "DATABASE_URL": empty_database_url,
            "AMQP_URL": amqp_url,
            "AMQP_PREFIX": amqp_prefix,
            "TRACKAI_ENV": "test",
            "LOG_JSON": "true",
        },
        tmp_path,
    )
    provisioner = stack.start("provisioner")
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []
    tenants: RegistryClient[pb.TenantView] | None = None
    try:
        await asyncio.to_thread(stack.wait_ready, provisioner)
        target = f"127.0.0.1:{provisioner.grpc_port}"
        channel = client_channel(target, TOKEN)
        registry = pb_grpc.TenantRegistryServiceStub(channel)
        tenant = (
            await registry.CreateTenant(
                pb.CreateTenantRequest(name="Loja", slug="loja", allowed_domains=[LANDING_HOST])
            )
        ).tenant
        funnel = (
            await registry.CreateFunnel(
                pb.CreateFunnelRequest(
                    tenant_ref=tenant.id,
                    name="Lançamento",
                    slug="launch",
                    checkout_domains=[
                        "pay.kiwify.com.br",
                        "perfectpay.com.br",
                        "monetizze.com.br",
                        "braip.com",
                        "ticto.app",
                        "greenn.com.br",
                    ],
                )
            )
        ).funnel
        await channel.close()

        pool = await pg_pool(empty_database_url, schema="ingestion")
        # The collect endpoint reads the view (no secret), as the matcher does.
        tenants = tenant_view_client(target, local_dev_token("matcher"))
        ingest = FastAPI()
        ingest.include_router(build_collect_router(record_browser_hit(pool, tenants)))
        ingest_server, ingest_task, ingest_port = await _serve(ingest)
        servers.append((ingest_server, ingest_task))

        def script_tag() -> str:
            return (
                f'<script src="http://{INGEST_HOST}:{ingest_port}/sdk/v1/track.js" '
                f'data-tenant="{tenant.id}" data-funnel="{funnel.slug}" data-gateway="kiwify" '
                f'data-checkout-domains="{",".join(funnel.checkout_domains)}"></script>'
            )

        landing_server, landing_task, landing_port = await _serve(_landing_app(script_tag))
        servers.append((landing_server, landing_task))

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = await browser.new_context()

            async def checkout(route: Route) -> None:
                await route.fulfill(status=200, content_type="text/html", body="checkout")

            # No internet here: the gateways' checkout pages are answered locally.
            await context.route(
                re.compile(r"^https://[^/]*(kiwify|perfectpay)\.com\.br/"), checkout
            )

            async def open_page() -> Page:
                return await context.new_page()

            yield Env(tenant.id, pool, f"http://{LANDING_HOST}:{landing_port}", open_page)
            await browser.close()
    finally:
        for server, task in servers:
            server.should_exit = True
            await task
        if tenants is not None:
            await tenants.close()
        stack.stop_all()


async def test_tracking_script_end_to_end(env: Env) -> None:
    page = await env.open_page()
    started_ms = int(time.time() * 1000)
    url = f"{env.landing}/?fbclid=AbC123&utm_source=facebook"
    await page.goto(url)
    session_id = await page.evaluate("window.trackai.sessionId")
    assert re.fullmatch(r"ta[A-Za-z0-9]{20}", session_id)

    # The page view arrives with the fbc the browser built from the click: ms, case kept.
    (view,) = await _wait_rows(env.pool, "kind = 'page_view'")
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    fbc = cookies["_fbc"]
    assert re.fullmatch(r"fb\.1\.\d{13}\.AbC123", fbc)
    assert started_ms <= int(fbc.split(".")[2]) <= int(time.time() * 1000)
    assert view["fbc"] == fbc and view["fbclid"] == "AbC123"
    assert (
        re.fullmatch(r"fb\.1\.\d{13}\.\d{1,10}", cookies["_fbp"]) and view["fbp"] == cookies["_fbp"]
    )
    assert view["session_id"] == session_id
    # The stable visitor id (the pixel's external_id) travels with the hit, digest-shaped.
    visitor = cookies["_tai_vid"]
    assert re.fullmatch(r"[0-9a-f]{64}", visitor)
    assert await page.evaluate("window.trackai.visitorId") == visitor
    assert view["external_id_hash"] == visitor
    assert view["utm"] == {"utm_source": "facebook"}
    assert view["page_url"] == url
    # The browser reaches the service over loopback: not a visitor address, so none is kept.
    assert view["client_ip"] is None
    assert "Chrome" in view["user_agent"]

    # Checkout links carry the session id in sck (and src when free) plus the session's UTMs.
    buy = parse_qs(urlsplit(await page.get_attribute("#buy", "href") or "").query)
    assert buy == {"sck": [session_id], "src": [session_id], "utm_source": ["facebook"]}
    bio = parse_qs(urlsplit(await page.get_attribute("#bio", "href") or "").query)
    assert bio["sck"] == [session_id] and bio["src"] == ["bio"]
    assert await page.get_attribute("#blog", "href") == "https://blog.example.org/post"
    # What each platform passes back to its webhook: src (Monetizze venda.src, Braip meta.src,
    # Greenn saleMetas, Ticto tracking.src) and sck (Ticto tracking.sck).
    for platform in ("monetizze", "braip", "ticto", "greenn"):
        href = await page.get_attribute(f"#{platform}", "href") or ""
        query = parse_qs(urlsplit(href).query)
        assert query["src"] == [session_id] and query["sck"] == [session_id], platform

    # A second load of the landing keeps the session and the fbc; so does another page.
    await page.goto(url)
    await page.goto(f"{env.landing}/next")
    views = await _wait_rows(env.pool, "kind = 'page_view'", count=3)
    assert [v["session_id"] for v in views] == [session_id] * 3
    assert [v["external_id_hash"] for v in views] == [visitor] * 3
    assert {v["fbc"] for v in views} == {fbc}
    await page.wait_for_selector("#late-buy")
    late = parse_qs(urlsplit(await page.get_attribute("#late-buy", "href") or "").query)
    assert late["sck"] == [session_id]

    # Clicking through to the checkout records a checkout start.
    await page.goto(env.landing)
    await page.click("#buy")
    await page.wait_for_url(re.compile(r"^https://pay\.kiwify\.com\.br/"))
    assert parse_qs(urlsplit(page.url).query)["sck"] == [session_id]
    (start,) = await _wait_rows(env.pool, "kind = 'checkout_start'")
    assert start["session_id"] == session_id and start["event_name"] == "InitiateCheckout"

    # A lead form stores only hashes of the e-mail and phone.
    await page.goto(env.landing)
    await page.fill("input[name=email]", EMAIL)
    await page.fill("input[name=whatsapp]", PHONE)
    await page.click("#send")
    await page.wait_for_url(re.compile(r"/obrigado"))
    (lead,) = await _wait_rows(env.pool, "kind = 'lead'")
    assert lead["email_hash"] == pii.sha256_hex("joana.souza@example.com")
    assert lead["phone_hash"] == pii.sha256_hex("5521998765432")
    assert lead["session_id"] == session_id
    dump = await env.pool.fetchval("SELECT string_agg(e::text, '') FROM ingestion.events e") + repr(
        await env.pool.fetch("SELECT body FROM ingestion.outbox")
    )
    for plaintext in ("joana", "souza", "99876", "998765432"):
        assert plaintext not in dump.lower()

    # The thank-you page computes the same event_id as the server.
    for order, name, gateway in (
        ("PPCPMTB5Q3NP01", "Purchase", None),
        ("  pedido-ção-1 ", "purchase", None),
        ("HP1234|5", "InitiateCheckout", "Hotmart"),
    ):
        in_browser = await page.evaluate(
            "([o, n, g]) => window.trackai.eventId(o, n, g)", [order, name, gateway]
        )
        assert in_browser == event_id(env.tenant_id, gateway or "kiwify", order, name)
    with pytest.raises(Exception, match="invalid event_name"):
        await page.evaluate("window.trackai.eventId('A1', 'bad name!')")

    # A page on a domain the tenant did not list is refused: nothing stored.
    stored = len(await _wait_rows(env.pool, "true", timeout_s=0))
    async with page.expect_response(lambda r: "/api/v1/collect/" in r.url) as refused:
        await page.goto(env.landing.replace(LANDING_HOST, "intruder.localhost") + "/?fbclid=Zz9")
    assert await page.evaluate("typeof window.trackai.sessionId") == "string"
    assert (await refused.value).status == 403, "the page view was answered, and refused"
    assert len(await _wait_rows(env.pool, "true", timeout_s=0)) == stored
