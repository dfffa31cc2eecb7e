"""A Perfect Pay sale carrying everything a checkout can tell Meta — birthday, gender, address,
phone, the buyer's browser and public IP, the `_fbc`/`_fbp` cookies — across the real processes:
it arrives at the Meta fake with every customer-information parameter normalised and hashed as
Meta specifies, click ids byte for byte, and `action_source=website` (a purchase on a web checkout,
not an automatic conversion) with the funnel's page as `event_source_url`; the fake's validation
of Meta's rules accepts it (issue 15).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_purchase_flow import PIXEL_ID, _meta_and_pipeline, _trackai, _wait_for
from trackai_kit.identity import event_id

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

FIXTURE = Path(__file__).resolve().parents[2] / "services/ingestion/tests/fixtures/gateways"
PERFECTPAY_TOKEN = "0123456789abcdef0123456789abcdef"  # the fixture's
LANDING_URL = "https://loja.example.com/curso"
#: An ad click id longer than the 200 characters the webhook path used to cut it at.
FBCLID = "IwAR" + "Zx9_-Q" * 40 + "EnD"
BUYER_IP = "177.71.32.10"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _sale(order_id: str, fbc: str, fbp: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FIXTURE / "perfectpay-1.json").read_text())
    now = datetime.now(ZoneInfo("America/Sao_Paulo")).strftime("%Y-%m-%d %H:%M:%S")
    body.update(code=order_id, date_created=now, date_approved=now)
    body["customer"].update(
        full_name="Maria da Silva Souza",
        birthday="1991-01-01",
        gender="Feminino",
        ip=BUYER_IP,
        city="São Paulo",
        state="Estado de São Paulo",
        zip_code="01310-100",
        country="Brasil",
    )
    body["metadata"].update(_fbc=fbc, _fbp=fbp)
    return body


def _one(values: Any) -> Any:
    return values[0] if isinstance(values, list) else values


def test_a_perfectpay_sale_reaches_meta_with_every_parameter(stack: Stack, meta) -> None:
    meta_url, meta_client = meta
    stack.env["META_GRAPH_URL"] = meta_url
    provisioner = stack.start("provisioner")
    stack.wait_ready(provisioner)
    assert provisioner.grpc_port is not None
    stack.env["PROVISIONER_GRPC_TARGET"] = f"127.0.0.1:{provisioner.grpc_port}"
    tenant_id = json.loads(
        _trackai(
            stack, "tenant", "create", "--name", "Loja", "--slug", "loja-pp",
            "--domain", "loja.example.com",
        )
    )["id"]  # fmt: skip
    _trackai(
        stack, "tenant", "set-gateway", tenant_id, "--gateway", "perfectpay",
        "--secret-file", "-", stdin=PERFECTPAY_TOKEN,
    )  # fmt: skip
    _trackai(
        stack, "funnel", "create", tenant_id, "--name", "Curso", "--slug", "curso",
        "--landing-url", LANDING_URL,
    )  # fmt: skip
    ingestion = _meta_and_pipeline(stack, tenant_id)

    created_ms = int(time.time() * 1000) - 3_600_000
    fbc = f"fb.1.{created_ms}.{FBCLID}"
    fbp = f"fb.1.{created_ms}.1234567890"
    order_id = f"PP{uuid.uuid4().hex[:12].upper()}"
    body = _sale(order_id, fbc, fbp)
    with httpx.Client(base_url=ingestion.http, timeout=10) as http:
        answer = http.post(f"/api/v1/webhooks/perfectpay/{tenant_id}", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "accepted", answer.text

    expected_id = event_id(tenant_id, "perfectpay", order_id, "Purchase")
    # The fake stores only what passed its validation of Meta's rules (one invalid event would
    # have made it refuse the whole request, and the dispatcher dead-letter it).
    [stored] = _wait_for(
        lambda: meta_client.events(pixel_id=PIXEL_ID, event_id=expected_id), 60, "the Purchase"
    )
    event = stored.get("event", stored)
    assert event["event_name"] == "Purchase"
    assert event["action_source"] == "website"
    assert event["event_source_url"] == LANDING_URL
    assert abs(int(event["event_time"]) - datetime.now(UTC).timestamp()) < 600
    assert float(event["custom_data"]["value"]) == 5.0
    user = event["user_data"]
    expected_hashes = {
        "em": sha("buyer@example.com"),
        "ph": sha("5531900000000"),
        "fn": sha("maria"),
        "ln": sha("souza"),
        "ct": sha("sãopaulo"),
        "st": sha("sp"),
        "zp": sha("01310100"),
        "country": sha("br"),
        "db": sha("19910101"),
        "ge": sha("f"),
    }
    assert {key: _one(user.get(key)) for key in expected_hashes} == expected_hashes
    assert user["client_ip_address"] == BUYER_IP
    assert user["client_user_agent"] == body["customer"]["user_agent"]
    assert user["fbc"] == fbc  # whole, case kept, past 200 characters
    assert user["fbp"] == fbp

    # Nothing personal in plaintext in any process's log.
    for proc in stack.procs.values():
        logs = proc.logs()
        assert "buyer@example.com" not in logs and "1991-01-01" not in logs
