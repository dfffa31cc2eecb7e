"""The whole promise, across real processes: a click on the landing page and a Kiwify purchase
webhook become ONE Purchase at Meta (the sandbox fake), with the shared event_id, the click's fbc
and hashed customer data — and a repeated webhook does not become a second one.

provisioner (registry) ─ ingestion (collect + webhook) ─► ingest-events ─► matcher consume
  ─► capi-dispatch ─► dispatcher consume ─► Meta fake
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.e2e.conftest import ServiceProcess, Stack
from trackai_kit.identity import event_id
from trackai_kit.pii import email_hash

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "services/ingestion/tests/fixtures/gateways/kiwify-3.json"
KIWIFY_TOKEN = "e2e-kiwify-token"
PIXEL_ID = "1234567890"
META_TOKEN = "sandbox-token"
SESSION_ID = "taE2Esession0000000001"
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


def _kiwify_webhook(order_id: str) -> bytes:
    """The real approved-sale payload, as of now, carrying our session id in `sck`."""
    payload = json.loads(FIXTURE.read_text())
    brasilia_now = datetime.now(ZoneInfo("America/Sao_Paulo")).strftime("%Y-%m-%d %H:%M")
    payload.update(
        order_id=order_id,
        created_at=brasilia_now,
        updated_at=brasilia_now,
        approved_date=brasilia_now,
    )
    payload["TrackingParameters"]["sck"] = SESSION_ID
    return json.dumps(payload).encode()


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
            "loja.example.com",
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
    with httpx.Client(base_url=ingestion.http, timeout=10) as http:
        hit = http.post(
            f"/api/v1/collect/{tenant_id}",
            headers={
                "Origin": "https://loja.example.com",
                "User-Agent": "Mozilla/5.0 (E2E) Chrome/126",
            },
            json={
                "type": "page_view",
                "session_id": SESSION_ID,
                "event_id": "pv" + uuid.uuid4().hex[:20],
                "page_url": f"https://loja.example.com/curso?fbclid={FBCLID}&utm_source=facebook",
                "fbclid": FBCLID,
                "utm_source": "facebook",
            },
        )
        assert hit.status_code == 204, hit.text

        # 2. Kiwify posts the approved sale, signed with the tenant's token; then posts it again.
        order_id = f"e2e-{uuid.uuid4()}"
        body = _kiwify_webhook(order_id)
        signature = hmac.new(KIWIFY_TOKEN.encode(), body, hashlib.sha1).hexdigest()
        path = f"/api/v1/webhooks/kiwify/{tenant_id}?signature={signature}"
        first = http.post(path, content=body, headers={"Content-Type": "application/json"})
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "accepted"
        second = http.post(path, content=body, headers={"Content-Type": "application/json"})
        assert second.status_code == 200 and second.json()["duplicate"] is True

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
    em = user["em"] if isinstance(user["em"], str) else user["em"][0]
    assert em == email_hash("buyer@example.com")
    assert abs(int(data["event_time"]) - datetime.now(UTC).timestamp()) < 600

    # A late duplicate never becomes a second delivery.
    time.sleep(2)
    assert len(meta_client.events(pixel_id=PIXEL_ID, event_id=expected_id)) == 1

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
    assert row["stage"] == "deterministic" and row["session_id"] == SESSION_ID
