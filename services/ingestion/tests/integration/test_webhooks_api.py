"""Webhook receiver end to end in-process: real HTTP app (ASGI), real PostgreSQL, real gRPC
tenant registry and real Redis. Every fixture, every credential, duplicates, test payloads, each
refusal with nothing stored, the shared rate limit, and the read API."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
import qs_codec
from structlog.testing import capture_logs

from trackai.common.v1 import events_pb2 as common_pb
from trackai.ingestion.v1 import events_pb2 as ev
from trackai.ingestion.v1 import ingestion_service_pb2 as ing
from trackai.ingestion.v1 import ingestion_service_pb2_grpc as ing_grpc
from trackai_ingestion.bootstrap import INGESTION_SERVICE
from trackai_ingestion.domain.gateways.signatures import (
    relay_signature,
)
from trackai_ingestion.entrypoints.grpc_access import POLICY
from trackai_ingestion.service_layer.webhooks import AUTH_BURST_THRESHOLD
from trackai_kit.grpc import client_channel, local_dev_callers, local_dev_token, start_grpc_server
from trackai_kit.settings import GrpcSettings
from trackai_testing.personal_data import find_leaks

from ..conftest import FIXTURE_PERSONAL_DATA, KIWIFY_SIGNATURES, PLAINTEXT, fixture_bytes, hmac_hex
from .conftest import SECRETS, App, AppFactory, Registry, credentials

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}


async def post(
    app: App,
    gateway: str,
    tenant: str,
    raw: bytes,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    return await app.client.post(
        f"/api/v1/webhooks/{gateway}/{tenant}",
        content=raw,
        headers={**JSON, **(headers or {})},
        params=params,
    )


async def post_signed(app: App, gateway: str, tenant: str, raw: bytes) -> httpx.Response:
    extra = credentials(gateway, raw)
    return await post(app, gateway, tenant, raw, **extra)


def with_changes(name: str, **changes: Any) -> bytes:
    body = json.loads(fixture_bytes(name))
    body.update(changes)
    return json.dumps(body).encode()


async def counts(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM ingestion.events) AS events, "
            "(SELECT count(*) FROM ingestion.outbox WHERE exchange = '') AS outbox, "
            "(SELECT count(*) FROM ingestion.outbox WHERE exchange <> '') AS statuses, "
            "(SELECT count(*) FROM ingestion.webhook_receipts) AS receipts"
        )
    finally:
        await conn.close()
    assert row is not None
    return dict(row)


# fixture -> (answer status, conversion status or None, amount, event time)
EXPECTED: dict[str, tuple[str, str | None, Decimal | None, datetime | None]] = {
    "kiwify-1.json": ("ignored", None, None, None),
    "kiwify-2.json": ("ignored", None, None, None),
    "kiwify-3.json": ("accepted", "approved", Decimal("5.00"), datetime(2026, 6, 8, 14, 53, tzinfo=UTC)),
    "kiwify-4.json": ("accepted", "abandoned", None, datetime(2026, 6, 15, 15, 44, 25, 411000, tzinfo=UTC)),
    "perfectpay-1.json": ("accepted", "approved", Decimal("5"), datetime(2025, 9, 25, 3, 30, 20, tzinfo=UTC)),
    "perfectpay-3.json": ("accepted", "approved", Decimal("29.9"), datetime(2026, 9, 19, 0, 36, 45, tzinfo=UTC)),
    "hotmart-1.json": ("ignored", None, None, None),
    "hotmart-3.json": ("accepted", "approved", Decimal("540"), datetime(2024, 4, 5, 19, 34, 38, tzinfo=UTC)),
    "eduzz-1.json": ("ignored", None, None, None),
    "eduzz-2.json": ("accepted", "approved", Decimal("197"), datetime(2024, 1, 10, 17, 45, tzinfo=UTC)),
    "cakto-1.json": ("ignored", None, None, None),
    "monetizze-1.json": ("accepted", "completed", Decimal("157.00"), datetime(2022, 10, 1, 12, 33, 53, tzinfo=UTC)),
    "monetizze-2.json": ("accepted", "completed", Decimal("157.00"), datetime(2022, 10, 1, 12, 33, 53, tzinfo=UTC)),
    "braip-1.json": ("accepted", "approved", Decimal("237.90"), datetime(2024, 5, 29, 20, 56, 8, tzinfo=UTC)),
    "ticto-1.json": ("accepted", "approved", Decimal("39.90"), datetime(2024, 2, 10, 22, 19, 17, tzinfo=UTC)),
    "greenn-1.json": ("accepted", "approved", Decimal("99.9"), datetime(2025, 11, 4, 23, 0, tzinfo=UTC)),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_every_fixture_is_answered_and_stored_as_expected(
    app: App, tenant: str, database_url: str, name: str
) -> None:
    gateway = name.split("-", maxsplit=1)[0]
    answer, status, amount, event_time = EXPECTED[name]
    response = await post_signed(app, gateway, tenant, fixture_bytes(name))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == answer
    conn = await asyncpg.connect(database_url)
    try:
        receipt = await conn.fetchrow("SELECT * FROM ingestion.webhook_receipts")
        assert receipt is not None and receipt["http_status"] == 200
        if answer == "ignored":
            assert body["reason"]
            assert receipt["outcome"] in ("test", "ignored")
            assert await conn.fetchval("SELECT count(*) FROM ingestion.events") == 0
            # Nothing for the pipeline; a gateway panel's test payload tells trackai.status.
            queued = await conn.fetch("SELECT exchange, routing_key, body FROM ingestion.outbox")
            if receipt["outcome"] == "ignored":
                assert queued == []
                return
            [status] = queued
            assert (status["exchange"], status["routing_key"]) == (
                "trackai.status",
                f"webhook.{tenant}",
            )
            update = common_pb.StatusUpdate.FromString(status["body"])
            assert (update.tenant_id, update.entity, update.entity_id, update.status) == (
                tenant,
                common_pb.STATUS_ENTITY_WEBHOOK,
                gateway,
                "test",
            )
            return
        assert body["duplicate"] is False
        row = await conn.fetchrow(
            "SELECT * FROM ingestion.events WHERE id = $1", uuid.UUID(body["conversion_id"])
        )
        outbox = await conn.fetch("SELECT * FROM ingestion.outbox WHERE exchange = ''")
        statuses = await conn.fetch(
            "SELECT * FROM ingestion.outbox WHERE exchange = 'trackai.status'"
        )
    finally:
        await conn.close()
    assert row is not None
    assert (row["tenant_id"], row["gateway"], row["status"]) == (uuid.UUID(tenant), gateway, status)
    assert row["amount"] == amount
    assert row["event_time"] == event_time
    assert receipt["outcome"] == "accepted" and receipt["conversion_id"] == row["id"]
    assert len(outbox) == 1 and outbox[0]["routing_key"] == "ingest-events"
    assert outbox[0]["message_type"] == "trackai.ingestion.v1.IngestEvent"
    message = ev.IngestEvent.FromString(outbox[0]["body"])
    assert message.message_id == outbox[0]["message_id"] == body["conversion_id"]
    assert message.tenant_id == tenant
    assert message.conversion.conversion_id == body["conversion_id"]
    assert message.conversion.order_id == row["order_id"]
    assert message.conversion.event_time.ToDatetime(tzinfo=UTC) == event_time
    if amount is not None:
        assert Decimal(message.conversion.amount) == amount
        assert message.conversion.currency == "BRL"
    [received] = statuses
    assert received["routing_key"] == f"conversion.{tenant}"
    update = common_pb.StatusUpdate.FromString(received["body"])
    assert (update.entity, update.entity_id, update.status) == (
        common_pb.STATUS_ENTITY_CONVERSION,
        body["conversion_id"],
        "received",
    )
    # Ids and statuses only: the fixture's buyer never rides along.
    assert find_leaks(FIXTURE_PERSONAL_DATA, str(update)) == []


@pytest.mark.parametrize("name", sorted(KIWIFY_SIGNATURES))
async def test_kiwify_byte_exact_vectors_verify(
    app: App, tenant: str, database_url: str, name: str
) -> None:
    raw = fixture_bytes(name)
    ok = await post(app, "kiwify", tenant, raw, params={"signature": KIWIFY_SIGNATURES[name]})
    assert ok.status_code == 200
    # Panel test payload: verified, answered 2xx, never a conversion.
    assert ok.json() == {
        "status": "ignored",
        "reason": "kiwify panel test payload (the panel's sample buyer, no tracking parameters)",
    }
    tampered = raw.replace(b'"charge_amount":', b'"charge_amount": ')
    refused = await post(
        app, "kiwify", tenant, tampered, params={"signature": KIWIFY_SIGNATURES[name]}
    )
    assert refused.status_code == 401
    assert (await counts(database_url))["events"] == 0


async def test_kiwify_real_sale_with_the_vectors_shape_becomes_a_conversion(
    app: App, tenant: str
) -> None:
    raw = fixture_bytes("kiwify-1.json").replace(b"johndoe@example.com", b"ana@cliente.com.br")
    response = await post_signed(app, "kiwify", tenant, raw)
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"


WRONG_SECRET_MESSAGES = {
    "kiwify": "Kiwify signature does not match the webhook token stored for this tenant",
    "perfectpay": "Perfect Pay token does not match",
    "hotmart": "X-HOTMART-HOTTOK does not match",
    "eduzz": "Eduzz x-signature does not match",
    "cakto": "Cakto secret does not match",
    "monetizze": "Monetizze chave_unica does not match",
    "braip": "Braip basic_authentication does not match",
    "ticto": "Ticto token does not match",
    "greenn": "Greenn `token` header does not match",
}
GOOD_FIXTURE = {
    "kiwify": "kiwify-3.json",
    "perfectpay": "perfectpay-1.json",
    "hotmart": "hotmart-3.json",
    "eduzz": "eduzz-2.json",
    "cakto": "cakto-1.json",
    "monetizze": "monetizze-1.json",
    "braip": "braip-1.json",
    "ticto": "ticto-1.json",
    "greenn": "greenn-1.json",
}


@pytest.mark.parametrize("gateway", sorted(WRONG_SECRET_MESSAGES))
async def test_wrong_secret_is_refused_with_the_credential_to_check(
    app: App, registry: Registry, database_url: str, gateway: str
) -> None:
    tenant = registry.add_tenant(secrets={**SECRETS, gateway: "a-different-secret"})
    response = await post_signed(app, gateway, tenant, fixture_bytes(GOOD_FIXTURE[gateway]))
    assert response.status_code == 401
    detail = response.json()["detail"]
    assert WRONG_SECRET_MESSAGES[gateway] in detail
    assert f"trackai tenant set-gateway {tenant} --gateway {gateway}" in detail
    assert "a-different-secret" not in response.text
    assert await counts(database_url) == {"events": 0, "outbox": 0, "statuses": 0, "receipts": 0}


@pytest.mark.parametrize(
    ("gateway", "strip"),
    [
        ("kiwify", lambda c: c.pop("params")),
        ("hotmart", lambda c: c.pop("headers")),
        ("eduzz", lambda c: c.pop("headers")),
    ],
)
async def test_missing_credential_is_refused(
    app: App, tenant: str, gateway: str, strip: Any
) -> None:
    raw = fixture_bytes(GOOD_FIXTURE[gateway])
    extra = credentials(gateway, raw)
    strip(extra)
    response = await post(app, gateway, tenant, raw, **extra)
    assert response.status_code == 401
    assert "missing" in response.json()["detail"]


@pytest.mark.parametrize(
    ("gateway", "key"),
    [
        ("perfectpay", "token"),
        ("cakto", "secret"),
        ("monetizze", "chave_unica"),
        ("braip", "basic_authentication"),
        ("ticto", "token"),
        ("greenn", "token"),
    ],
)
async def test_body_token_gateways_refuse_a_payload_without_token(
    app: App, tenant: str, gateway: str, key: str
) -> None:
    body = json.loads(fixture_bytes(GOOD_FIXTURE[gateway]))
    body.pop(key, None)
    # Monetizze's JSON copy carries the key too, and is what is read.
    body.pop("json", None)
    response = await post(app, gateway, tenant, json.dumps(body).encode())
    assert response.status_code == 401
    assert response.json()["credential"] == f"{gateway}_{key}"
    assert f"missing `{key}`" in response.json()["detail"]


@pytest.mark.parametrize("gateway", sorted(GOOD_FIXTURE))
async def test_x_signature_is_required_when_the_tenant_has_a_signing_secret(
    app: App, registry: Registry, gateway: str
) -> None:
    tenant = registry.add_tenant(signing_secrets={gateway: "relay-key"})
    raw = fixture_bytes(GOOD_FIXTURE[gateway])
    extra = credentials(gateway, raw)
    headers = dict(extra.pop("headers", {}))
    now = int(time.time())
    missing = await post(app, gateway, tenant, raw, headers=headers, **extra)
    assert missing.status_code == 401
    assert missing.json()["credential"] == "x_signature"
    wrong = await post(
        app,
        gateway,
        tenant,
        raw,
        headers={**headers, "X-Signature": relay_signature("other", raw, now)},
        **extra,
    )
    assert wrong.status_code == 401
    assert "X-Signature does not match" in wrong.json()["detail"]
    right = await post(
        app,
        gateway,
        tenant,
        raw,
        headers={**headers, "X-Signature": relay_signature("relay-key", raw, now)},
        **extra,
    )
    assert right.status_code == 200, right.text


async def test_a_captured_relay_signature_cannot_be_replayed_later(
    app: App, registry: Registry
) -> None:
    tenant = registry.add_tenant(secrets={"perfectpay": ""}, signing_secrets={"perfectpay": "k"})
    raw = with_changes("perfectpay-1.json", token="whatever-the-relay-sends")
    now = int(time.time())
    stale = await post(
        app,
        "perfectpay",
        tenant,
        raw,
        headers={"X-Signature": relay_signature("k", raw, now - 301)},
    )
    assert stale.status_code == 401
    assert stale.json()["detail"].startswith("stale X-Signature timestamp: signed 30")
    future = await post(
        app,
        "perfectpay",
        tenant,
        raw,
        headers={"X-Signature": relay_signature("k", raw, now + 400)},
    )
    assert future.status_code == 401
    assert "in the future" in future.json()["detail"]
    # Re-dating a captured delivery needs the secret: the timestamp is inside the HMAC.
    captured = relay_signature("k", raw, now - 3600).split(",")[1]
    redated = await post(
        app, "perfectpay", tenant, raw, headers={"X-Signature": f"t={now},{captured}"}
    )
    assert redated.status_code == 401
    assert "X-Signature does not match" in redated.json()["detail"]
    ok = await post(
        app, "perfectpay", tenant, raw, headers={"X-Signature": relay_signature("k", raw, now - 60)}
    )
    assert ok.status_code == 200 and ok.json()["status"] == "accepted"


async def test_the_untimestamped_signature_needs_the_legacy_switch(
    make_app: AppFactory, registry: Registry
) -> None:
    tenant = registry.add_tenant(secrets={"perfectpay": ""}, signing_secrets={"perfectpay": "k"})
    raw = with_changes("perfectpay-1.json", token="whatever-the-relay-sends")
    legacy = {"X-Signature": "sha256=" + hmac_hex("sha256", "k", raw)}
    refused = await post(await make_app(), "perfectpay", tenant, raw, headers=legacy)
    assert refused.status_code == 401
    assert "INGESTION_LEGACY_RELAY_SIGNATURE" in refused.json()["detail"]
    migrating = await make_app(legacy_relay_signature=True)
    ok = await post(migrating, "perfectpay", tenant, raw, headers=legacy)
    assert ok.status_code == 200 and ok.json()["status"] == "accepted"
    wrong = {"X-Signature": "sha256=" + hmac_hex("sha256", "other", raw)}
    assert (await post(migrating, "perfectpay", tenant, raw, headers=wrong)).status_code == 401


async def test_a_burst_of_refused_credentials_is_logged_once(app: App, tenant: str) -> None:
    raw = fixture_bytes(GOOD_FIXTURE["hotmart"])
    with capture_logs() as logs:
        for _ in range(AUTH_BURST_THRESHOLD + 5):
            response = await post(app, "hotmart", tenant, raw, headers={"X-Hotmart-Hottok": "x"})
            assert response.status_code == 401
    bursts = [e for e in logs if e["event"] == "webhook authentication failures burst"]
    assert len(bursts) == 1
    assert bursts[0]["tenant_id"] == tenant and bursts[0]["refused"] == AUTH_BURST_THRESHOLD
    assert bursts[0]["gateway"] == "hotmart"


async def test_repeated_webhook_is_absorbed_and_enqueued_once(
    app: App, tenant: str, database_url: str
) -> None:
    raw = fixture_bytes("kiwify-3.json")
    first, second = [await post_signed(app, "kiwify", tenant, raw) for _ in range(2)]
    assert first.json()["duplicate"] is False
    assert second.json() == {**first.json(), "duplicate": True}
    # Concurrent repeats race on the unique index; still one conversion.
    racing = await asyncio.gather(*(post_signed(app, "kiwify", tenant, raw) for _ in range(5)))
    assert {r.json()["conversion_id"] for r in racing} == {first.json()["conversion_id"]}
    # The same order changing status is a new conversion.
    refunded = with_changes(
        "kiwify-3.json", webhook_event_type="order_refunded", order_status="refunded"
    )
    third = await post_signed(app, "kiwify", tenant, refunded)
    assert third.json()["duplicate"] is False
    # One message and one "received" status per new conversion; repeats add neither.
    assert await counts(database_url) == {"events": 2, "outbox": 2, "statuses": 2, "receipts": 8}


@pytest.mark.parametrize(
    ("gateway", "raw"),
    [
        ("kiwify", with_changes("kiwify-3.json", webhook_event_type="subscription_late")),
        ("hotmart", with_changes("hotmart-3.json", event="SUBSCRIPTION_CANCELLATION")),
        ("cakto", with_changes("cakto-1.json", event="initiate_checkout")),
        ("eduzz", json.dumps({"id": "x", "event": "ping", "data": {}}).encode()),
    ],
)
async def test_unsupported_events_and_pings_are_2xx_and_not_conversions(
    app: App, tenant: str, database_url: str, gateway: str, raw: bytes
) -> None:
    response = await post_signed(app, gateway, tenant, raw)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert response.json()["reason"]
    assert (await counts(database_url))["events"] == 0


async def test_bad_input_answers(
    app: App, tenant: str, registry: Registry, database_url: str
) -> None:
    raw = fixture_bytes("kiwify-3.json")
    signed = credentials("kiwify", raw)

    unknown_gateway = await post(app, "pagseguro", tenant, raw)
    assert unknown_gateway.status_code == 404
    assert "kiwify" in unknown_gateway.json()["detail"]

    assert (await post(app, "kiwify", str(uuid.uuid4()), raw, **signed)).status_code == 404
    not_uuid = await post(app, "kiwify", "acme", raw, **signed)
    assert not_uuid.status_code == 404 and not_uuid.json()["error"] == "unknown_tenant"

    only_kiwify = registry.add_tenant(secrets={"kiwify": SECRETS["kiwify"]})
    missing_gateway = await post(app, "hotmart", only_kiwify, fixture_bytes("hotmart-3.json"))
    assert missing_gateway.status_code == 404
    assert missing_gateway.json()["error"] == "gateway_not_configured"

    wrong_type = await app.client.post(
        f"/api/v1/webhooks/kiwify/{tenant}",
        content=raw,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        params=signed["params"],
    )
    assert wrong_type.status_code == 415

    garbage = b'{"order_id": "x", '
    malformed = await post(app, "kiwify", tenant, garbage, **credentials("kiwify", garbage))
    assert malformed.status_code == 400
    assert "line 1 column" in malformed.json()["detail"]
    array = b"[1, 2]"
    assert (
        await post(app, "kiwify", tenant, array, **credentials("kiwify", array))
    ).status_code == 400

    no_order = with_changes("kiwify-3.json", order_id=None)
    invalid = await post(app, "kiwify", tenant, no_order, **credentials("kiwify", no_order))
    assert invalid.status_code == 422
    assert invalid.json()["field"] == "order_id"
    bad_amount = json.loads(raw)
    bad_amount["Commissions"]["charge_amount"] = "12,50"
    bad = json.dumps(bad_amount).encode()
    response = await post(app, "kiwify", tenant, bad, **credentials("kiwify", bad))
    assert response.status_code == 422 and response.json()["field"] == "Commissions.charge_amount"

    huge = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    assert (
        await post(app, "kiwify", tenant, huge, **credentials("kiwify", huge))
    ).status_code == 413

    async def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 65536

    streamed = await app.client.post(
        f"/api/v1/webhooks/kiwify/{tenant}", content=chunks(), headers=JSON, params=signed["params"]
    )
    assert streamed.status_code == 413

    # Nothing half-stored: no conversion, no outbox message; the invalid but authenticated
    # requests leave an audit receipt.
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM ingestion.events") == 0
        assert await conn.fetchval("SELECT count(*) FROM ingestion.outbox") == 0
        outcomes = await conn.fetch(
            "SELECT outcome, http_status, reason FROM ingestion.webhook_receipts ORDER BY received_at"
        )
    finally:
        await conn.close()
    assert [(r["outcome"], r["http_status"]) for r in outcomes] == [
        ("invalid", 400),
        ("invalid", 400),
        ("invalid", 422),
        ("invalid", 422),
    ]


async def test_registry_down_without_cache_answers_503_with_retry_after(
    make_app: AppFactory, tenant: str
) -> None:
    down = await make_app(PROVISIONER_GRPC_TARGET="127.0.0.1:1")
    response = await post_signed(down, "kiwify", tenant, fixture_bytes("kiwify-3.json"))
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0


async def test_rate_limit_is_shared_by_replicas(make_app: AppFactory, registry: Registry) -> None:
    tenant = registry.add_tenant(rate_limit=5)
    replica_a, replica_b = await make_app(), await make_app()
    raw = fixture_bytes("kiwify-3.json")
    answers = [
        await post_signed(replica, "kiwify", tenant, raw) for replica in (replica_a, replica_b) * 2
    ]
    answers.append(await post_signed(replica_a, "kiwify", tenant, raw))
    assert [a.status_code for a in answers] == [200] * 5
    limited = await post_signed(replica_b, "kiwify", tenant, raw)
    assert limited.status_code == 429
    # 5 per minute: the next slot is one emission interval (12 s) after the burst.
    assert 1 <= int(limited.headers["Retry-After"]) <= 12
    # Other tenants are not affected.
    other = registry.add_tenant(rate_limit=5)
    assert (await post_signed(replica_b, "kiwify", other, raw)).status_code == 200
    # Refused credentials do not use up the budget of the tenant.
    fresh = registry.add_tenant(rate_limit=1)
    for _ in range(3):
        bad = await post(replica_a, "kiwify", fresh, raw, params={"signature": "0" * 40})
        assert bad.status_code == 401
    assert (await post_signed(replica_a, "kiwify", fresh, raw)).status_code == 200


async def test_redis_down_fails_open(make_app: AppFactory, registry: Registry) -> None:
    no_redis = await make_app(REDIS_URL="redis://127.0.0.1:1/0")
    tenant = registry.add_tenant(rate_limit=1)
    raw = fixture_bytes("kiwify-3.json")
    answers = [await post_signed(no_redis, "kiwify", tenant, raw) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]


async def test_no_personal_data_in_the_database(app: App, tenant: str, database_url: str) -> None:
    for name in sorted(EXPECTED):
        response = await post_signed(app, name.split("-")[0], tenant, fixture_bytes(name))
        assert response.status_code == 200
    # Every kind of receipt: invalid (422) too.
    no_order = with_changes("kiwify-3.json", order_id=None)
    await post(app, "kiwify", tenant, no_order, **credentials("kiwify", no_order))
    dump = subprocess.run(
        ["pg_dump", "--data-only", "--schema=ingestion", database_url],
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8", errors="replace")
    assert "COPY ingestion.events" in dump and "kiwify" in dump
    leaks = [line for line in dump.splitlines() if any(v in line for v in PLAINTEXT)]
    assert leaks == []
    # Every fixture's buyer values, in every form a leak takes (lower-cased, JSON-escaped, ...).
    assert find_leaks(FIXTURE_PERSONAL_DATA, dump) == []
    # Protobuf bodies are bytea (hex in the dump): check them decoded as well.
    conn = await asyncpg.connect(database_url)
    try:
        bodies = b"".join(r["body"] for r in await conn.fetch("SELECT body FROM ingestion.outbox"))
    finally:
        await conn.close()
    decoded = bodies.decode("utf-8", errors="replace")
    assert [value for value in PLAINTEXT if value in decoded] == []
    assert find_leaks(FIXTURE_PERSONAL_DATA, decoded) == []


async def test_read_api_is_tenant_scoped_and_paginates(
    app: App, registry: Registry, database_url: str
) -> None:
    tenant, other = registry.add_tenant(), registry.add_tenant()
    base = json.loads(fixture_bytes("kiwify-3.json"))
    start = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    ids = []
    for index in range(5):
        when = start + timedelta(hours=index)
        local = (when - timedelta(hours=3)).strftime("%Y-%m-%d %H:%M")
        body = {**base, "order_id": f"order-{index}", "approved_date": local}
        # A public buyer IP (the fixture's documentation address is never kept).
        body["Customer"] = {**base["Customer"], "ip": "177.67.82.9"}
        if index == 4:
            body |= {"webhook_event_type": "order_refunded", "order_status": "refunded"}
        raw = json.dumps(body).encode()
        response = await post_signed(app, "kiwify", tenant, raw)
        ids.append(response.json()["conversion_id"])
    foreign = await post_signed(app, "kiwify", other, fixture_bytes("kiwify-3.json"))

    server = await start_grpc_server(
        GrpcSettings(port=0, callers=local_dev_callers()),
        partial(ing_grpc.add_IngestionServiceServicer_to_server, app.components.servicer),
        [INGESTION_SERVICE],
        POLICY,
    )
    channel = client_channel(f"127.0.0.1:{server.port}", local_dev_token("operator"))
    stub = ing_grpc.IngestionServiceStub(channel)
    try:
        got = await stub.GetConversion(
            ing.GetConversionRequest(tenant_id=tenant, conversion_id=ids[0])
        )
        record = got.conversion
        assert record.id == ids[0] and record.tenant_id == tenant
        assert record.conversion.order_id == "order-0"
        assert record.conversion.amount == "5.00" and record.conversion.currency == "BRL"
        assert record.conversion.status == ev.CONVERSION_STATUS_APPROVED
        assert record.conversion.payment_method == ev.PAYMENT_METHOD_CREDIT_CARD
        assert record.conversion.tracking.sck == "01hmtkn-fake-uuid-aaa"
        assert len(record.conversion.user_data.em) == 64
        assert record.conversion.client_ip == "177.67.82.9"

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetConversion(
                ing.GetConversionRequest(
                    tenant_id=tenant, conversion_id=foreign.json()["conversion_id"]
                )
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetConversion(
                ing.GetConversionRequest(tenant_id="acme", conversion_id=ids[0])
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        # A page of the console's events list driven by another service: one read.
        batch = await stub.BatchGetConversions(
            ing.BatchGetConversionsRequest(
                tenant_id=tenant,
                conversion_ids=[
                    ids[1],
                    ids[3],
                    foreign.json()["conversion_id"],
                    "not-a-uuid",
                    str(uuid.uuid4()),
                    ids[1],
                ],
            )
        )
        assert sorted(c.id for c in batch.conversions) == sorted([ids[1], ids[3]])
        assert (
            next(c for c in batch.conversions if c.id == ids[1])
            == (
                await stub.GetConversion(
                    ing.GetConversionRequest(tenant_id=tenant, conversion_id=ids[1])
                )
            ).conversion
        )
        for refused in (
            ing.BatchGetConversionsRequest(tenant_id="acme", conversion_ids=[ids[0]]),
            ing.BatchGetConversionsRequest(tenant_id=tenant, conversion_ids=[ids[0]] * 501),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.BatchGetConversions(refused)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        seen: list[str] = []
        token = ""
        pages = 0
        while True:
            page = await stub.ListConversions(
                ing.ListConversionsRequest(tenant_id=tenant, page_size=2, page_token=token)
            )
            seen += [c.conversion.order_id for c in page.conversions]
            pages += 1
            token = page.next_page_token
            if not token:
                break
        assert seen == [f"order-{i}" for i in (4, 3, 2, 1, 0)] and pages == 3

        approved = await stub.ListConversions(
            ing.ListConversionsRequest(tenant_id=tenant, statuses=[ev.CONVERSION_STATUS_APPROVED])
        )
        assert [c.conversion.order_id for c in approved.conversions] == [
            f"order-{i}" for i in (3, 2, 1, 0)
        ]
        window = ing.ListConversionsRequest(tenant_id=tenant)
        window.start_time.FromDatetime(start + timedelta(hours=1))
        window.end_time.FromDatetime(start + timedelta(hours=3))
        in_window = await stub.ListConversions(window)
        assert [c.conversion.order_id for c in in_window.conversions] == ["order-2", "order-1"]

        # The console's search and filters: order id, gateway, funnel.
        by_order = await stub.ListConversions(
            ing.ListConversionsRequest(tenant_id=tenant, order_id="order-3")
        )
        assert [c.id for c in by_order.conversions] == [ids[3]]
        by_gateway = await stub.ListConversions(
            ing.ListConversionsRequest(tenant_id=tenant, gateway="hotmart")
        )
        assert list(by_gateway.conversions) == []
        kiwify = await stub.ListConversions(
            ing.ListConversionsRequest(tenant_id=tenant, gateway="kiwify", order_id="order-0")
        )
        assert [c.id for c in kiwify.conversions] == [ids[0]]
        by_funnel = await stub.ListConversions(
            ing.ListConversionsRequest(tenant_id=tenant, funnel_id=str(uuid.uuid4()))
        )
        assert list(by_funnel.conversions) == []
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListConversions(
                ing.ListConversionsRequest(tenant_id=tenant, funnel_id="funil")
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        first_page = await stub.ListConversions(
            ing.ListConversionsRequest(tenant_id=tenant, page_size=2)
        )
        for bad_token in (first_page.next_page_token, "not-a-token"):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ListConversions(
                    ing.ListConversionsRequest(tenant_id=other, page_token=bad_token)
                )
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # Receipts are read by people's tools and the assistant, not by the pipeline's services.
        async with client_channel(f"127.0.0.1:{server.port}", local_dev_token("matcher")) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await ing_grpc.IngestionServiceStub(ch).ListConversions(
                    ing.ListConversionsRequest(tenant_id=tenant)
                )
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await channel.close()
        await server.stop(0)


# -- Monetizze, Braip, Ticto, Greenn -----------------------------------------------------------

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def monetizze_form(body: dict[str, Any]) -> bytes:
    """A Monetizze postback as it arrives: PHP-style keys, form-encoded, the JSON copy in ``json``."""
    return qs_codec.encode(body, qs_codec.EncodeOptions(encode_values_only=False)).encode()


async def test_monetizze_form_and_json_are_one_conversion(
    app: App, tenant: str, database_url: str
) -> None:
    body = json.loads(fixture_bytes("monetizze-1.json"))
    form = await post(app, "monetizze", tenant, monetizze_form(body), headers=FORM)
    assert form.status_code == 200, form.text
    assert form.json()["status"] == "accepted" and form.json()["duplicate"] is False
    without_copy = {k: v for k, v in body.items() if k != "json"}
    php_keys = await post(app, "monetizze", tenant, monetizze_form(without_copy), headers=FORM)
    as_json = await post(app, "monetizze", tenant, fixture_bytes("monetizze-1.json"))
    assert php_keys.json() == as_json.json() == {**form.json(), "duplicate": True}
    conn = await asyncpg.connect(database_url)
    try:
        receipt = await conn.fetchrow(
            "SELECT content_type, body_redacted FROM ingestion.webhook_receipts "
            "ORDER BY received_at LIMIT 1"
        )
    finally:
        await conn.close()
    assert receipt is not None
    assert receipt["content_type"] == FORM["Content-Type"]
    stored = json.loads(receipt["body_redacted"])
    assert stored["venda"]["codigo"] == "41852883" and stored["chave_unica"] == "[REDACTED]"


@pytest.mark.parametrize(
    ("gateway", "recipients"),
    [
        (
            "monetizze",
            [{"tipoPostback": {"codigo": 2, "descricao": "Produtor"}},
             {"tipoPostback": {"codigo": 1, "descricao": "Afiliado"}},
             {"tipoPostback": {"codigo": 4, "descricao": "Gerente"}}],
        ),
        ("braip", [{"postback_type": "Produtor"}, {"postback_type": "Afiliado"}]),
    ],
)  # fmt: skip
async def test_one_postback_per_commission_recipient_is_one_conversion(
    app: App, tenant: str, database_url: str, gateway: str, recipients: list[dict[str, Any]]
) -> None:
    body = json.loads(fixture_bytes(GOOD_FIXTURE[gateway]))
    body.pop("json", None)
    if gateway == "monetizze":
        body["codigo_status"] = "2"
    answers = []
    for recipient in recipients:
        raw = json.dumps({**body, **recipient}).encode()
        if gateway == "monetizze":
            raw, headers = monetizze_form(json.loads(raw)), FORM
        else:
            headers = {}
        answers.append((await post(app, gateway, tenant, raw, headers=headers)).json())
    assert [a["status"] for a in answers] == ["accepted"] * len(recipients)
    assert [a["duplicate"] for a in answers] == [False] + [True] * (len(recipients) - 1)
    assert len({a["conversion_id"] for a in answers}) == 1
    assert (await counts(database_url))["events"] == 1
    assert (await counts(database_url))["outbox"] == 1


async def test_greenn_secret_in_the_body_or_behind_our_signature(
    app: App, registry: Registry
) -> None:
    tenant = registry.add_tenant()
    body = json.loads(fixture_bytes("greenn-1.json"))
    in_body = await post(
        app, "greenn", tenant, json.dumps({**body, "token": SECRETS["greenn"]}).encode()
    )
    assert in_body.status_code == 200 and in_body.json()["status"] == "accepted"
    wrong = await post(app, "greenn", tenant, json.dumps({**body, "token": "nope"}).encode())
    assert wrong.status_code == 401 and wrong.json()["credential"] == "greenn_token"
    relayed = registry.add_tenant(secrets={"greenn": ""}, signing_secrets={"greenn": "relay-k"})
    raw = fixture_bytes("greenn-1.json")
    signed = await post(
        app,
        "greenn",
        relayed,
        raw,
        headers={"X-Signature": relay_signature("relay-k", raw, int(time.time()))},
    )
    assert signed.status_code == 200 and signed.json()["status"] == "accepted"


async def test_rate_limited_webhooks_are_logged_once_per_tenant_and_window(
    app: App, registry: Registry
) -> None:
    tenant, other = registry.add_tenant(rate_limit=1), registry.add_tenant(rate_limit=1)
    raw = fixture_bytes("kiwify-3.json")
    with capture_logs() as logs:
        for who in (tenant, other):
            statuses = [(await post_signed(app, "kiwify", who, raw)).status_code for _ in range(6)]
            assert statuses.count(429) == 5
    limited = [e for e in logs if e["event"] == "webhooks rate limited"]
    assert sorted(e["tenant_id"] for e in limited) == sorted([tenant, other])


async def test_a_source_guessing_tenant_ids_is_cut_off_without_hurting_real_tenants(
    make_app: AppFactory, registry: Registry
) -> None:
    # The test client's peer is 203.0.113.7: made a trusted proxy, X-Forwarded-For names sources.
    app = await make_app(unknown_tenant_limit_per_minute=3, trusted_proxies="203.0.113.7")
    scanner, gateway = {"X-Forwarded-For": "198.51.100.66"}, {"X-Forwarded-For": "177.67.82.9"}
    raw = fixture_bytes("kiwify-3.json")
    real = registry.add_tenant()
    extra = credentials("kiwify", raw)
    assert (await post(app, "kiwify", real, raw, headers=scanner, **extra)).status_code == 200
    for _ in range(3):
        made_up = str(uuid.uuid4())
        assert (await post(app, "kiwify", made_up, raw, headers=scanner)).status_code == 404
    calls = registry.servicer.calls
    cut_off = await post(app, "kiwify", str(uuid.uuid4()), raw, headers=scanner)
    assert cut_off.status_code == 429 and cut_off.json()["error"] == "too_many_unknown_tenants"
    assert 1 <= int(cut_off.headers["Retry-After"]) <= 60
    assert registry.servicer.calls == calls  # the registry was not asked
    # The same source still reaches the tenant it has been sending real webhooks for ...
    assert (await post(app, "kiwify", real, raw, headers=scanner, **extra)).status_code == 200
    # ... and other sources are not affected.
    other = str(uuid.uuid4())
    assert (await post(app, "kiwify", other, raw, headers=gateway)).status_code == 404
