"""Webhook ingress over the real HTTP stack (uvicorn on a free port, real PostgreSQL, real gRPC
registry): what each malformed input gets (docs/runbooks/webhooks.md), what is recorded of it,
and the limits that bound memory and waiting (body size, body time, webhooks in flight, database
connections)."""

from __future__ import annotations

import asyncio
import codecs
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from trackai_ingestion.adapters.repository import ConversionStore
from trackai_ingestion.domain.gateways import ADAPTERS
from trackai_ingestion.service_layer.ports import Receipt
from trackai_kit.postgres import create_pool
from trackai_kit.settings import PostgresSettings

from ..conftest import fixture_bytes, hmac_hex
from .conftest import SECRETS, App, AppFactory, credentials

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
NESTED_2000 = "[" * 2000 + "]" * 2000


async def post(
    app: App, gateway: str, tenant: str, raw: bytes, *, signed: bool = True, **extra: Any
) -> httpx.Response:
    auth = credentials(gateway, raw) if signed else {}
    headers = {**JSON, **auth.get("headers", {}), **extra.pop("headers", {})}
    return await app.client.post(
        f"/api/v1/webhooks/{gateway}/{tenant}",
        content=raw,
        headers=headers,
        params=extra.pop("params", auth.get("params")),
        **extra,
    )


def replaced(name: str, old: str, new: str) -> bytes:
    """The fixture's text with ``old`` (which must occur) replaced by raw JSON text ``new``."""
    text = fixture_bytes(name).decode()
    assert old in text, old
    return text.replace(old, new, 1).encode()


async def receipts(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch("SELECT * FROM ingestion.webhook_receipts ORDER BY received_at")
    finally:
        await conn.close()


async def events(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM ingestion.events"))
    finally:
        await conn.close()


@pytest.fixture
async def served(make_app: AppFactory) -> App:
    return await make_app(real_http=True)


# (case, gateway, body, signed?, status, error, what the answer names, recorded outcome or None)
MALFORMED = [
    ("depth 2000, unauthenticated", "perfectpay", NESTED_2000.encode(), False, 400,
     "malformed_body", "nested more than", None),
    ("depth 2000 inside, unauthenticated", "cakto", f'{{"secret": {NESTED_2000}}}'.encode(),
     False, 400, "malformed_body", "nested more than", None),
    ("depth 2000, signed", "kiwify", NESTED_2000.encode(), True, 400, "malformed_body",
     "nested more than", "invalid"),
    ("token repeated, wrong one first", "perfectpay",
     replaced("perfectpay-1.json", '"token":', '"token": "wrong", "token":'), False, 400,
     "malformed_body", "key 'token' appears more than once", None),
    ("NUL in the order id", "hotmart", replaced("hotmart-3.json", '"HPCOMUNIDADE001"',
     '"HP\\u0000X"'), True, 400, "malformed_body", "data.purchase.transaction: contains a NUL",
     "invalid"),
    ("lone surrogate in a name", "eduzz", replaced("eduzz-2.json", '"name":', '"name": "\\ud800",'
     ' "x":'), True, 400, "malformed_body", "lone UTF-16 surrogate", "invalid"),
    ("lone surrogate in the token", "perfectpay",
     replaced("perfectpay-1.json", '"0123456789abcdef0123456789abcdef"', '"\\udc00"'), False,
     400, "malformed_body", "token: contains a lone UTF-16 surrogate", None),
    ("NaN amount", "perfectpay", replaced("perfectpay-1.json", '"sale_amount": 5', '"sale_amount":'
     " NaN"), False, 400, "malformed_body", "sale_amount: the number 'NaN'", None),
    ("1e999 amount", "hotmart", replaced("hotmart-3.json", '"value": 540.0', '"value": 1e999'),
     True, 400, "malformed_body", "the number '1e999' is out of range", "invalid"),
    ("5000-digit integer", "kiwify", replaced("kiwify-3.json", '"charge_amount": 500',
     '"charge_amount": ' + "9" * 5000), True, 400, "malformed_body", "more than 40 digits",
     "invalid"),
    ("UTF-16 body", "kiwify", fixture_bytes("kiwify-3.json").decode().encode("utf-16"), True, 400,
     "malformed_body", "UTF-8", "invalid"),
    ("a JSON array", "hotmart", b"[]", True, 400, "malformed_body", "must be a JSON object",
     "invalid"),
    ("customer is a string", "perfectpay", replaced("perfectpay-1.json", '"customer": {',
     '"customer": "x", "c2": {'), False, 422, "invalid_payload", "customer", "invalid"),
    ("buyer is a number", "hotmart", replaced("hotmart-3.json", '"buyer": {',
     '"buyer": 7, "b2": {'), True, 422, "invalid_payload", "data.buyer", "invalid"),
    ("date in year 9999", "perfectpay", replaced("perfectpay-1.json",
     '"date_approved": "2025-09-25 00:30:20"', '"date_approved": "9999-12-31 23:59:59"'), False,
     422, "invalid_payload", "date_approved", "invalid"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("gateway", "raw", "signed", "status", "error", "names", "recorded"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
async def test_malformed_input_gets_a_precise_4xx_and_a_safe_receipt(
    served: App,
    tenant: str,
    database_url: str,
    gateway: str,
    raw: bytes,
    signed: bool,
    status: int,
    error: str,
    names: str,
    recorded: str | None,
) -> None:
    response = await post(served, gateway, tenant, raw, signed=signed)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert names in body["detail"]
    assert "connection" not in response.headers  # the connection stays usable
    stored = await receipts(database_url)
    assert await events(database_url) == 0
    if recorded is None:
        assert stored == []  # not authenticated: nothing about it is kept
        return
    assert [(r["outcome"], r["http_status"]) for r in stored] == [(recorded, status)]
    assert names in stored[0]["reason"]
    # The same client goes on using its kept-alive connection.
    follow_up = await post(served, "kiwify", tenant, fixture_bytes("kiwify-3.json"))
    assert follow_up.status_code == 200


async def test_a_utf8_bom_is_accepted(served: App, tenant: str, database_url: str) -> None:
    raw = codecs.BOM_UTF8 + fixture_bytes("kiwify-3.json")
    response = await post(served, "kiwify", tenant, raw)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    assert await events(database_url) == 1


async def test_a_repeated_kiwify_signature_is_refused(served: App, tenant: str) -> None:
    raw = fixture_bytes("kiwify-3.json")
    good = hmac_hex("sha1", SECRETS["kiwify"], raw)
    for query in ([("signature", "0" * 40), ("signature", good)], [("signature", good)] * 2):
        response = await post(served, "kiwify", tenant, raw, signed=False, params=query)
        assert response.status_code == 401, response.text
        assert response.json()["credential"] == "kiwify_signature"
        assert "2 `signature` query parameters" in response.json()["detail"]


async def test_several_eduzz_signatures_are_refused(served: App, tenant: str) -> None:
    raw = fixture_bytes("eduzz-2.json")
    good = hmac_hex("sha256", SECRETS["eduzz"], raw)
    # Two header lines reach the app joined by a comma (RFC 9110), as do two values in one line.
    for headers in (
        [("x-signature", "0" * 64), ("x-signature", good)],
        [("x-signature", f"{good}, {good}")],
    ):
        response = await served.client.post(
            f"/api/v1/webhooks/eduzz/{tenant}",
            content=raw,
            headers=[("content-type", "application/json"), *headers],
        )
        assert response.status_code == 401, response.text
        assert "2 Eduzz x-signature values" in response.json()["detail"]


async def test_a_receipt_with_unstorable_text_is_recorded_safely(
    pg_pool: Any, tenant: str, database_url: str
) -> None:
    """Headers are not checked by the parse step: a refusal's receipt must still be storable."""
    receipt = Receipt(
        received_at=datetime.now(UTC),
        gateway="hotmart",
        outcome="invalid",
        http_status=400,
        body_sha256="0" * 64,
        body_redacted={},
        headers={"user-agent": "bot\x00\udc80"},
        content_type="application/json\x00",
        reason="odd \x00 reason \ud800",
        order_id="o\x00",
    )
    store = ConversionStore(await pg_pool(database_url, schema="ingestion"))
    await store.record(uuid.UUID(tenant), receipt)
    [row] = await receipts(database_url)
    assert row["reason"] == "odd \ufffd reason \ufffd"
    assert json.loads(row["headers"])["user-agent"] == "bot\ufffd\ufffd"
    assert row["order_id"] == "o\ufffd"


# -- limits ------------------------------------------------------------------------------------


async def test_bodies_over_128_kib_are_refused(served: App, tenant: str) -> None:
    path = f"/api/v1/webhooks/kiwify/{tenant}"
    # Announced too large: refused before a byte of the body is read.
    reader, writer = await _open_request(served, path, 128 * 1024 + 1, b"")
    head = await _answer_head(reader)
    writer.close()
    assert head.startswith(b"http/1.1 413") and b"connection: close" in head
    assert b"131072 bytes" in await reader.read()
    # Not announced (chunked): refused as soon as the bytes read pass the cap.
    reader, writer = await asyncio.open_connection("127.0.0.1", served.client.base_url.port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
    )
    for _ in range(33):
        writer.write(b"1000\r\n" + b"x" * 4096 + b"\r\n")
    await writer.drain()
    head = await _answer_head(reader)
    writer.close()
    assert head.startswith(b"http/1.1 413") and b"connection: close" in head


async def _answer_head(reader: asyncio.StreamReader) -> bytes:
    return (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)).lower()


async def _open_request(
    app: App, path: str, declared: int, sent: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A request whose body is announced but only partly sent (a slow or stalled client)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", app.client.base_url.port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n".encode()
        + sent
    )
    await writer.drain()
    return reader, writer


async def test_a_body_sent_too_slowly_gets_408_and_the_connection_closed(
    make_app: AppFactory, tenant: str
) -> None:
    app = await make_app(real_http=True, webhook_body_timeout_s=0.5)
    reader, writer = await _open_request(app, f"/api/v1/webhooks/kiwify/{tenant}", 100, b'{"a":')
    head = await _answer_head(reader)
    assert head.startswith(b"http/1.1 408")
    assert b"connection: close" in head
    assert b"not received within 0.5 s" in await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()


async def test_webhooks_beyond_the_in_flight_limit_get_503_with_retry_after(
    make_app: AppFactory, tenant: str
) -> None:
    app = await make_app(real_http=True, webhook_max_in_flight=1)
    raw = fixture_bytes("kiwify-3.json")
    # One webhook holds the only slot while its body trickles in.
    reader, writer = await _open_request(
        app, f"/api/v1/webhooks/kiwify/{tenant}", len(raw), raw[:10]
    )
    # (Until the server has read that request's head, a webhook still gets the slot.)
    for _ in range(100):
        response = await post(app, "kiwify", tenant, raw)
        if response.status_code != 200:
            break
        await asyncio.sleep(0.1)
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "overloaded"
    assert response.headers["retry-after"] == "5"
    # The slot frees as soon as that webhook is answered.
    writer.write(raw[10:])
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    assert status_line.startswith(b"HTTP/1.1 401")  # not signed; but it was handled
    writer.close()
    assert (await post(app, "kiwify", tenant, raw)).status_code == 200


async def test_a_webhook_waits_for_a_database_connection_a_bounded_time(
    make_app: AppFactory, tenant: str, database_url: str
) -> None:
    pool = await create_pool(
        PostgresSettings(url=database_url, pool_min=1, pool_max=1), schema="ingestion"
    )
    try:
        app = await make_app(real_http=True, pool=pool, db_acquire_timeout_s=0.3)
        async with pool.acquire():  # every connection busy
            response = await post(app, "kiwify", tenant, fixture_bytes("kiwify-3.json"))
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "storage_unavailable"
        assert response.headers["retry-after"] == "30"
        response = await post(app, "kiwify", tenant, fixture_bytes("kiwify-3.json"))
        assert response.status_code == 200, response.text
    finally:
        await pool.close()


async def test_an_unexpected_failure_closes_the_connection_cleanly(
    served: App, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should anything still escape, the answer says ``Connection: close`` (the client does not
    reuse a socket the server then resets) and the next request is served."""

    def broken(*_: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ADAPTERS["hotmart"], "interpret", broken)
    raw = fixture_bytes("hotmart-3.json")
    response = await post(served, "hotmart", tenant, raw)
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error"}
    assert response.headers["connection"] == "close"
    monkeypatch.undo()
    assert (await post(served, "hotmart", tenant, raw)).status_code == 200
