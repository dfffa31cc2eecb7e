"""The whole promise, across real processes: a click on the landing page (the real tracking
script in Chromium) and a Kiwify purchase webhook become ONE Purchase at Meta (the sandbox fake),
with the shared event_id, the click's fbc and hashed customer data — and a repeated webhook does
not become a second one, nor any other Purchase.

provisioner (registry) ─ ingestion (collect + webhook) ─► ingest-events ─► matcher consume
  ─► capi-dispatch ─► dispatcher consume ─► Meta fake
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.e2e.conftest import ServiceProcess, Stack
from trackai_kit.identity import event_id
from trackai_kit.pii import email_hash
from trackai_testing.browser import CHROMIUM, CHROMIUM_ARGS
from trackai_testing.plugin import run_sync

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "services/ingestion/tests/fixtures/gateways/kiwify-3.json"
KIWIFY_TOKEN = "e2e-kiwify-token"
PIXEL_ID = "1234567890"
META_TOKEN = "sandbox-token"
SESSION_ID = "taE2Esession0000000001"
LANDING_HOST = "shop.localhost"
FBCLID = "IwAR2e2eFbClIdCaseKept"


def _trackai(stack: Stack, *args: str, stdin: str = "") -> str:
    """Run the operator command against the stack's processes (targets set in ``stack.env``)."""
    trackai = Path(sys.executable).parent / "trackai"
    done = subprocess.run(
        [str(trackai), *args, "--json"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _kiwify_webhook(order_id: str, session_id: str = SESSION_ID) -> bytes:
    """The real approved-sale payload, as of now, carrying our session id in `sck`."""
    payload = json.loads(FIXTURE.read_text())
    brasilia_now = datetime.now(ZoneInfo("America/Sao_Paulo")).strftime("%Y-%m-%d %H:%M")
    payload.update(
        order_id=order_id,
        created_at=brasilia_now,
        updated_at=brasilia_now,
        approved_date=brasilia_now,
    )
    payload["TrackingParameters"]["sck"] = session_id
    return json.dumps(payload).encode()


class _Landing:
    """The seller's landing page on ``shop.localhost`` (Chromium resolves *.localhost to the
    loopback), loading the real ``track.js`` from the ingestion process like a seller's page."""

    def __init__(self, ingestion_port: int, tenant_id: str) -> None:
        script = (
            f'<script src="http://ingest.localhost:{ingestion_port}/sdk/v1/track.js" '
            f'data-tenant="{tenant_id}" data-gateway="kiwify" '
            'data-checkout-domains="pay.kiwify.com.br"></script>'
        )
        page = (
            f'<!doctype html><html><head><meta charset="utf-8">{script}</head><body>'
            '<a id="buy" href="https://pay.kiwify.com.br/AbC9xYz">Comprar</a></body></html>'
        ).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://{LANDING_HOST}:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _click_through_the_tracking_script(
    landing: _Landing, stored: Callable[[str], int]
) -> tuple[str, str, str]:
    """The ad click lands in Chromium: track.js sends the page view (with the fbclid) and puts its
    session id on the checkout link. The browser stays open until ``stored(session_id)`` sees the
    page view. The session id, the checkout link's ``sck`` and the visitor id (the pixel's
    external_id)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{landing.url}curso?fbclid={FBCLID}&utm_source=facebook")
            session_id = str(page.evaluate("window.trackai.sessionId"))
            visitor_id = str(page.evaluate("window.trackai.visitorId"))
            href = page.get_attribute("#buy", "href") or ""
            _wait_for(lambda: stored(session_id), 30, "the page view stored by ingestion")
        finally:
            browser.close()
    return session_id, parse_qs(urlsplit(href).query)["sck"][0], visitor_id


async def _page_views(database_url: str, tenant_id: str, session_id: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM ingestion.events WHERE tenant_id = $1 AND kind = 'page_view'"
            " AND session_id = $2",
            uuid.UUID(tenant_id),
            session_id,
        )
        return count
    finally:
        await conn.close()


def _meta_and_pipeline(stack: Stack, tenant_id: str, ready_s: float = 45.0) -> ServiceProcess:
    """Store the tenant's Meta destination, start ingestion, the matcher's and the dispatcher's
    consumers; returns ingestion once all three are ready."""
    _trackai(
        stack,
        "tenant",
        "set-meta",
        tenant_id,
        "--pixel-id",
        PIXEL_ID,
        "--access-token-file",
        "-",
        stdin=META_TOKEN,
    )
    ingestion = stack.start("ingestion")
    procs = [
        ingestion,
        stack.start("matcher", "consume", grpc=False),
        stack.start("dispatcher", "consume", grpc=False, DISPATCHER_BATCH_DEADLINE_MS="100"),
    ]
    for proc in procs:
        stack.wait_ready(proc, ready_s)
    return ingestion


def _wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_click_and_purchase_reach_meta_once_with_the_shared_event_id(stack: Stack, meta) -> None:
    meta_url, meta_client = meta
    stack.env["META_GRAPH_URL"] = meta_url
    provisioner = stack.start("provisioner")
    stack.wait_ready(provisioner)
    assert provisioner.grpc_port is not None
    stack.env["PROVISIONER_GRPC_TARGET"] = f"127.0.0.1:{provisioner.grpc_port}"

    tenant = json.loads(
        _trackai(
            stack,
            "tenant",
            "create",
            "--name",
            "Loja E2E",
            "--slug",
            "loja-e2e",
            "--domain",
            LANDING_HOST,
        )
    )
    tenant_id = tenant["id"]
    _trackai(
        stack,
        "tenant",
        "set-gateway",
        tenant_id,
        "--gateway",
        "kiwify",
        "--secret-file",
        "-",
        stdin=KIWIFY_TOKEN,
    )
    ingestion = _meta_and_pipeline(stack, tenant_id)

    # 1. The ad click lands: the tracking script's page view, with the fbclid in the URL.
    landing = _Landing(ingestion.http_port, tenant_id)
    try:
        session_id, sck, visitor_id = _click_through_the_tracking_script(
            landing,
            lambda session: run_sync(_page_views(stack.env["DATABASE_URL"], tenant_id, session)),
        )
    finally:
        landing.close()
    assert sck == session_id
    with httpx.Client(base_url=ingestion.http, timeout=10) as http:
        # 2. Kiwify posts the approved sale, signed with the tenant's token; then posts it again.
        order_id = f"e2e-{uuid.uuid4()}"
        body = _kiwify_webhook(order_id, sck)
        signature = hmac.new(KIWIFY_TOKEN.encode(), body, hashlib.sha1).hexdigest()
        path = f"/api/v1/webhooks/kiwify/{tenant_id}?signature={signature}"
        first = http.post(path, content=body, headers={"Content-Type": "application/json"})
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "accepted"
        second = http.post(path, content=body, headers={"Content-Type": "application/json"})
        assert second.status_code == 200 and second.json()["duplicate"] is True
        # A later, different sale: once it is at Meta, everything before it has been handled.
        sentinel_id = f"e2e-sentinel-{uuid.uuid4()}"
        sentinel = _kiwify_webhook(sentinel_id, "taSentinelNoSession00")
        signed = hmac.new(KIWIFY_TOKEN.encode(), sentinel, hashlib.sha1).hexdigest()
        answer = http.post(
            f"/api/v1/webhooks/kiwify/{tenant_id}?signature={signed}",
            content=sentinel,
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 200 and answer.json()["status"] == "accepted"

    # 3. Meta receives exactly one Purchase, under the event_id the thank-you pixel computes.
    expected_id = event_id(tenant_id, "kiwify", order_id, "Purchase")
    events = _wait_for(
        lambda: meta_client.events(pixel_id=PIXEL_ID, event_id=expected_id),
        60,
        "the Purchase at Meta",
    )
    [event] = events
    data = event.get("event", event)
    assert data["event_name"] == "Purchase"
    assert data["custom_data"]["currency"] == "BRL"
    assert float(data["custom_data"]["value"]) == 5.00  # Kiwify's 500 cents, gross
    user = data["user_data"]
    assert user.get("fbc", "").startswith("fb.1."), json.dumps(data)
    assert user["fbc"].endswith(FBCLID)  # from the click, case kept
    # The visitor id track.js gives the pixel as external_id, sent as is by the server.
    assert user["external_id"] == [visitor_id]
    em = user["em"] if isinstance(user["em"], str) else user["em"][0]
    assert em == email_hash("buyer@example.com")
    assert abs(int(data["event_time"]) - datetime.now(UTC).timestamp()) < 600

    # A late duplicate never becomes a second delivery, and no other Purchase reached Meta: once
    # the later sale has arrived, Meta holds exactly the two sales, once each.
    sentinel_event = event_id(tenant_id, "kiwify", sentinel_id, "Purchase")
    _wait_for(
        lambda: meta_client.events(pixel_id=PIXEL_ID, event_id=sentinel_event),
        60,
        "the later sale at Meta",
    )
    purchases = [
        e.get("event", e)
        for e in meta_client.events(pixel_id=PIXEL_ID)
        if e.get("event", e)["event_name"] == "Purchase"
    ]
    assert sorted(p["event_id"] for p in purchases) == sorted([expected_id, sentinel_event])

    # Nothing personal in plaintext in any process's log.
    for proc in stack.procs.values():
        assert "buyer@example.com" not in proc.logs()
        assert "5511900000000" not in proc.logs()

    # 4. The operator sees how the sale was attributed.
    matcher_api = stack.start("matcher")
    stack.wait_ready(matcher_api)
    stack.env["MATCHER_GRPC_TARGET"] = f"127.0.0.1:{matcher_api.grpc_port}"
    export = _trackai(stack, "matches", "export", "--tenant", tenant_id)
    rows = [json.loads(line) for line in export.splitlines() if line.strip()]
    [row] = [r for r in rows if r["order_id"] == order_id]
    assert row["event_id"] == expected_id
    assert row["stage"] == "deterministic" and row["session_id"] == session_id
