"""Collect endpoint against real PostgreSQL and RabbitMQ: the row, its outbox message, the
published IngestEvent, idempotency, CORS and every refusal (with nothing stored)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from trackai.ingestion.v1 import events_pb2 as ev
from trackai.provisioner.v1 import provisioner_service_pb2 as registry_pb
from trackai_ingestion.adapters.hits import HitStore, _Pending
from trackai_ingestion.bootstrap import record_browser_hit
from trackai_ingestion.entrypoints.collect import build_collect_router
from trackai_ingestion.service_layer.windows import UnknownTenantLimit
from trackai_kit import migrations, outbox, pii
from trackai_kit.amqp import AmqpClient, IncomingMessage
from trackai_kit.outbox import OutboxRelay
from trackai_kit.settings import AmqpSettings
from trackai_kit.tenant_config import TenantConfigUnavailable
from trackai_kit.topology import INGEST_EVENTS, ingestion_topology
from trackai_testing.plugin import in_thread

pytestmark = pytest.mark.integration

TENANT_ID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
FUNNEL_ID = "a0000000-0000-4000-8000-0000000000f1"
ORIGIN = "https://lp.shop.example.com"
PEER = "10.20.30.40"  # the load balancer, trusted below
EMAIL = "Maria.Silva@Example.com"
PHONE = "(11) 98765-4321"


class Directory:
    """Stands in for the tenant view cache: one tenant, reachable by id or slug."""

    def __init__(self) -> None:
        self.down = False
        self.config = registry_pb.TenantView(
            tenant=registry_pb.Tenant(
                id=TENANT_ID, slug="acme", allowed_domains=["shop.example.com"]
            ),
            funnels=[
                registry_pb.FunnelView(
                    funnel=registry_pb.Funnel(id=FUNNEL_ID, tenant_id=TENANT_ID, slug="launch")
                )
            ],
        )

    async def get(self, tenant_ref: str) -> registry_pb.TenantView | None:
        if self.down:
            raise TenantConfigUnavailable("registry down")
        return self.config if tenant_ref in (TENANT_ID, "acme") else None


@pytest.fixture
def ingestion_database_url(empty_database_url: str) -> str:
    # Only this service's schema: the test does not depend on other services' migrations.
    in_thread(lambda: migrations.upgrade("ingestion", empty_database_url))
    return empty_database_url


@pytest_asyncio.fixture(loop_scope="session")
async def pool(ingestion_database_url: str, pg_pool: Any) -> asyncpg.Pool:
    result: asyncpg.Pool = await pg_pool(ingestion_database_url, schema="ingestion")
    return result


@pytest.fixture
def directory() -> Directory:
    return Directory()


@pytest_asyncio.fixture(loop_scope="session")
async def client(pool: asyncpg.Pool, directory: Directory) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(
        build_collect_router(record_browser_hit(pool, directory), trusted_proxies=["10.0.0.0/8"])
    )
    transport = httpx.ASGITransport(app=app, client=(PEER, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest.test") as http:
        yield http


def _hit(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "page_view",
        "session_id": "taSESSION0000000000001",
        "event_id": "evEVENT00000000000000001",
        "page_url": "https://lp.shop.example.com/?fbclid=AbC123&utm_source=facebook",
        "referrer": "https://l.facebook.com/",
        "fbclid": "AbC123",
        "fbp": "fb.1.1767225600000.1234567890",
        "utm_source": "facebook",
        "utm_campaign": "launch-2026",
        "funnel": "launch",
    }
    body.update(overrides)
    return body


async def _post(
    client: httpx.AsyncClient,
    body: Any,
    *,
    tenant: str = TENANT_ID,
    origin: str | None = ORIGIN,
    content_type: str = "text/plain;charset=UTF-8",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    all_headers = {"content-type": content_type, "user-agent": "Mozilla/5.0 (Test) Chromium"}
    if origin is not None:
        all_headers["origin"] = origin
    all_headers.update(headers or {})
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post(f"/api/v1/collect/{tenant}", content=content, headers=all_headers)


async def _rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM ingestion.events ORDER BY received_at")


async def _outbox(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM ingestion.outbox ORDER BY id")


async def test_page_view_is_stored_enqueued_and_published(
    client: httpx.AsyncClient, pool: asyncpg.Pool, amqp_url: str, amqp_prefix: str
) -> None:
    resp = await _post(client, _hit(), headers={"x-forwarded-for": "6.6.6.6, 177.67.82.9"})
    assert resp.status_code == 204, resp.text
    assert resp.headers["access-control-allow-origin"] == ORIGIN

    (row,) = await _rows(pool)
    assert row["tenant_id"].hex == TENANT_ID.replace("-", "")
    assert (row["kind"], row["event_name"]) == ("page_view", "PageView")
    assert row["session_id"] == "taSESSION0000000000001"
    assert row["fbclid"] == "AbC123"
    assert row["fbc"].startswith("fb.1.") and row["fbc"].endswith(".AbC123")
    received_ms = int(row["received_at"].timestamp() * 1000)
    assert abs(int(row["fbc"].split(".")[2]) - received_ms) < 5  # built from the receipt, in ms
    assert str(row["client_ip"]) == "177.67.82.9"
    assert row["utm"] == {"utm_source": "facebook", "utm_campaign": "launch-2026"}
    assert row["tracking"] == {}
    assert str(row["funnel_id"]) == FUNNEL_ID
    assert row["user_agent"] == "Mozilla/5.0 (Test) Chromium"

    (box,) = await _outbox(pool)
    assert box["routing_key"] == INGEST_EVENTS and box["message_id"] == str(row["id"])
    assert box["message_type"] == "trackai.ingestion.v1.IngestEvent"

    received: list[IncomingMessage] = []
    got = asyncio.Event()

    async def handler(message: IncomingMessage) -> None:
        received.append(message)
        got.set()

    async with AmqpClient(AmqpSettings(url=amqp_url, prefix=amqp_prefix)) as amqp:
        await amqp.declare(ingestion_topology())
        assert await OutboxRelay(pool, amqp, schema="ingestion").relay_once() == 1
        consumer = await amqp.consume(INGEST_EVENTS, handler)
        try:
            await asyncio.wait_for(got.wait(), 10)
        finally:
            await consumer.cancel()

    (message,) = received
    assert message.type == "trackai.ingestion.v1.IngestEvent"
    event = ev.IngestEvent.FromString(message.body)
    assert event.message_id == message.message_id == str(row["id"])
    assert event.tenant_id == TENANT_ID and event.WhichOneof("payload") == "hit"
    hit = event.hit
    assert hit.hit_type == ev.HIT_TYPE_PAGE_VIEW
    assert (hit.session_id, hit.event_id) == ("taSESSION0000000000001", "evEVENT00000000000000001")
    assert hit.tracking.fbc == row["fbc"] and hit.tracking.fbclid == "AbC123"
    assert hit.tracking.fbp == "fb.1.1767225600000.1234567890"
    assert (hit.tracking.utm_source, hit.tracking.utm_campaign) == ("facebook", "launch-2026")
    assert hit.client_ip == "177.67.82.9" and hit.funnel_id == FUNNEL_ID
    assert hit.referrer == "https://l.facebook.com/"
    assert hit.event_time.ToDatetime().year >= 2026


async def test_a_beacon_sent_twice_is_stored_and_enqueued_once(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    for _ in range(2):
        assert (await _post(client, _hit(), tenant="acme")).status_code == 204
    assert len(await _rows(pool)) == 1
    assert len(await _outbox(pool)) == 1
    # The same event id under another hit kind is another hit.
    assert (await _post(client, _hit(type="checkout_start"))).status_code == 204
    kinds = sorted(r["kind"] for r in await _rows(pool))
    assert kinds == ["checkout_start", "page_view"]


async def test_campaign_tags_are_stored_without_personal_data(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    hit = _hit(
        utm_content="maria@example.com",
        utm_term="+55 11 9 1234-5678",
        src="taSESSION0000000000001",
        sck="cpf 123 456 789 09",
    )
    assert (await _post(client, hit)).status_code == 204
    (row,) = await _rows(pool)
    stored = json.dumps({"utm": row["utm"], "tracking": row["tracking"]})
    for plaintext in ("maria@example.com", "1234-5678", "456 789"):
        assert plaintext not in stored
    assert row["utm"]["utm_content"] == "[EMAIL]"
    assert row["utm"]["utm_source"] == "facebook"
    assert row["tracking"]["src"] == "taSESSION0000000000001"  # our session id, byte for byte
    (box,) = await _outbox(pool)
    assert b"maria@example.com" not in box["body"]


async def test_lead_stores_and_publishes_only_hashes(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    body = _hit(type="lead", event_id="evLEAD0000000000000001", email=EMAIL, phone=PHONE)
    assert (await _post(client, body)).status_code == 204
    (row,) = await _rows(pool)
    assert row["kind"] == "lead"
    assert row["email_hash"] == pii.sha256_hex("maria.silva@example.com")
    assert row["phone_hash"] == pii.sha256_hex("5511987654321")
    (box,) = await _outbox(pool)
    event = ev.IngestEvent.FromString(box["body"])
    assert event.hit.user_data.em == row["email_hash"]
    assert event.hit.user_data.ph == row["phone_hash"]
    stored = (repr(dict(row)) + repr(dict(box))).lower()
    for plaintext in ("maria", "silva", "98765", "987654321"):
        assert plaintext not in stored


async def test_cors_preflight_allows_only_the_tenants_domains(client: httpx.AsyncClient) -> None:
    ok = await client.options(
        f"/api/v1/collect/{TENANT_ID}",
        headers={
            "origin": "https://shop.example.com",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == "https://shop.example.com"
    assert "POST" in ok.headers["access-control-allow-methods"]
    assert ok.headers["access-control-allow-headers"].lower() == "content-type"
    assert ok.headers["vary"] == "Origin"
    refused = await client.options(
        f"/api/v1/collect/{TENANT_ID}",
        headers={"origin": "https://evil.example.net", "access-control-request-method": "POST"},
    )
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers
    unknown = await client.options(
        "/api/v1/collect/nobody",
        headers={"origin": ORIGIN, "access-control-request-method": "POST"},
    )
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        ({"tenant": "nobody"}, 404, "unknown_tenant"),
        ({"tenant": "Not%20A%20Tenant"}, 404, "unknown_tenant"),
        ({"origin": "https://evil.example.net"}, 403, "origin_not_allowed"),
        ({"origin": None}, 403, "origin_not_allowed"),
        ({"body": b"x" * (64 * 1024 + 1)}, 413, "body_too_large"),
        ({"body": b"{not json"}, 400, "invalid_json"),
        ({"body": b"\xff\xfe"}, 400, "invalid_json"),
        ({"content_type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
        ({"body": _hit(session_id="x")}, 422, "invalid_request"),
    ],
)
async def test_refusals_store_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool, kwargs: dict[str, Any], status: int, error: str
) -> None:
    body = kwargs.pop("body", _hit())
    resp = await _post(client, body, **kwargs)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] == error
    assert await _rows(pool) == [] and await _outbox(pool) == []


async def test_validation_errors_name_the_field_and_never_echo_personal_data(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    resp = await _post(
        client, _hit(type="lead", email="maria@", phone="12"), content_type="application/json"
    )
    assert resp.status_code == 422
    locs = {tuple(e["loc"]) for e in resp.json()["detail"]}
    assert locs == {("body", "email"), ("body", "phone")}
    assert "maria" not in resp.text
    assert resp.headers["access-control-allow-origin"] == ORIGIN
    assert await _rows(pool) == []


async def test_untrusted_peer_forwarded_for_is_ignored(
    pool: asyncpg.Pool, directory: Directory
) -> None:
    app = FastAPI()
    app.include_router(build_collect_router(record_browser_hit(pool, directory)))
    transport = httpx.ASGITransport(app=app, client=("179.108.4.2", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest.test") as http:
        resp = await _post(http, _hit(), headers={"x-forwarded-for": "6.6.6.6"})
    assert resp.status_code == 204
    (row,) = await _rows(pool)
    assert str(row["client_ip"]) == "179.108.4.2"


async def test_a_load_balancers_private_address_is_never_the_visitor(
    pool: asyncpg.Pool, directory: Directory
) -> None:
    # INGESTION_TRUSTED_PROXIES left unset behind a load balancer: the peer is the balancer.
    app = FastAPI()
    app.include_router(build_collect_router(record_browser_hit(pool, directory)))
    transport = httpx.ASGITransport(app=app, client=("10.0.3.17", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest.test") as http:
        resp = await _post(http, _hit(), headers={"x-forwarded-for": "177.67.82.9"})
    assert resp.status_code == 204
    (row,) = await _rows(pool)
    assert row["client_ip"] is None


async def test_a_source_guessing_tenants_is_cut_off(
    pool: asyncpg.Pool, directory: Directory
) -> None:
    limit = UnknownTenantLimit({TENANT_ID: "cached"}.get, per_window=2)
    app = FastAPI()
    app.include_router(
        build_collect_router(record_browser_hit(pool, directory), unknown_tenants=limit)
    )
    transport = httpx.ASGITransport(app=app, client=("179.108.4.2", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest.test") as http:
        for n in range(2):
            resp = await _post(http, _hit(), tenant=f"made-up-tenant-{n}")
            assert resp.status_code == 404
        resp = await _post(http, _hit(), tenant="made-up-tenant-9")
        assert resp.status_code == 429 and resp.json()["error"] == "too_many_unknown_tenants"
        assert int(resp.headers["retry-after"]) >= 1
        assert (await _post(http, _hit())).status_code == 204  # a cached tenant is still served


async def test_registry_outage_asks_the_browser_to_retry(
    client: httpx.AsyncClient, pool: asyncpg.Pool, directory: Directory
) -> None:
    directory.down = True
    resp = await _post(client, _hit())
    assert resp.status_code == 503 and resp.headers["retry-after"] == "5"
    assert await _rows(pool) == []


async def test_tracking_script_is_served_cacheable_and_compressed(
    client: httpx.AsyncClient,
) -> None:
    plain = await client.get("/sdk/v1/track.js", headers={"accept-encoding": "identity"})
    assert plain.status_code == 200
    assert plain.headers["content-type"] == "text/javascript; charset=utf-8"
    assert (
        "public" in plain.headers["cache-control"] and "max-age=" in plain.headers["cache-control"]
    )
    assert b"sendBeacon" in plain.content and len(plain.content) < 16 * 1024
    etag = plain.headers["etag"]
    again = await client.get(
        "/sdk/v1/track.js", headers={"if-none-match": etag, "accept-encoding": "identity"}
    )
    assert again.status_code == 304 and again.content == b""
    zipped = await client.get("/sdk/v1/track.js", headers={"accept-encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.headers["etag"] != etag
    # httpx decodes the body; the declared length is the compressed one.
    assert zipped.content == plain.content
    assert int(zipped.headers["content-length"]) < len(plain.content) // 2


async def test_concurrent_hits_are_group_committed_each_stored_and_published_once(
    client: httpx.AsyncClient, pool: asyncpg.Pool, amqp_url: str, amqp_prefix: str
) -> None:
    """600 beacons at once, every event sent twice (a retried beacon): the statements group
    them, yet each caller learns its own outcome, each distinct hit is one row and one message,
    and the relay publishes each once to ingest-events (counted, by id)."""
    distinct = 300
    bodies = [_hit(event_id=f"evGROUP{n:017d}", session_id=f"taGROUP{n:015d}")
              for n in range(distinct)]  # fmt: skip
    answers = await asyncio.gather(*(_post(client, body) for body in bodies + bodies))
    assert {a.status_code for a in answers} == {204}
    rows = await _rows(pool)
    assert len(rows) == distinct
    assert len({r["event_id"] for r in rows}) == distinct
    box = await _outbox(pool)
    assert sorted(b["message_id"] for b in box) == sorted(str(r["id"]) for r in rows)
    groups = await pool.fetchval(
        "SELECT count(DISTINCT xmin::text) FROM ingestion.events"
    )  # one transaction per statement
    assert groups < distinct, "hits arriving together shared statements"

    published: list[str] = []
    async with AmqpClient(AmqpSettings(url=amqp_url, prefix=amqp_prefix)) as amqp:
        await amqp.declare(ingestion_topology())
        relay = OutboxRelay(pool, amqp, schema="ingestion")
        while await relay.relay_once():
            pass
        connection = await aio_pika.connect(amqp_url)
        try:
            channel = await connection.channel()
            queue = await channel.get_queue(f"{amqp_prefix}{INGEST_EVENTS}", ensure=False)
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                published.append(ev.IngestEvent.FromString(message.body).message_id)
        finally:
            await connection.close()
    assert len(published) == distinct, "each hit published once"
    assert set(published) == {str(r["id"]) for r in rows}


async def test_a_hit_the_database_refuses_does_not_fail_the_others_in_its_statement(
    pool: asyncpg.Pool,
) -> None:
    """One row of a batch violates a constraint: the batch is written row by row, the others are
    stored, and only that caller sees the error."""
    store = HitStore(pool)
    row = _store_row(event_id="evGOOD0000000000000000")
    bad = _store_row(event_id="evBAD00000000000000000", kind="not-a-kind")
    more = [_store_row(event_id=f"evMORE{n:016d}") for n in range(5)]
    results = await asyncio.gather(
        *(store.write(r) for r in [row, bad, *more]), return_exceptions=True
    )
    assert results[0] is True and all(r is True for r in results[2:])
    assert isinstance(results[1], asyncpg.CheckViolationError)
    assert len(await _rows(pool)) == 6


async def test_a_hit_submitted_as_the_last_writer_finishes_is_still_written(
    pool: asyncpg.Pool,
) -> None:
    """A writer that found the queue empty is finished, but used to leave the set of writers only
    when its task's done-callback ran, a loop turn later. A hit submitted in between (the caller
    of the last hit written resumes first) saw every writer slot taken, started no writer, and
    waited until another hit came: at the end of a load, forever (issue 14's benchmark saw a
    collect hit held 14 minutes with the database idle)."""
    store = HitStore(pool)
    # One writer slot, so that "every writer finishes at once" is deterministic.
    store._max_in_flight = 1
    loop = asyncio.get_running_loop()
    first = _Pending(_store_row(event_id="evFIRST000000000000000"), loop.create_future())
    store._submit(first)
    assert await first.done is True
    # Resumed by the writer's answer, before its task's done-callback: the next hit, right now.
    late = _Pending(_store_row(event_id="evLATE0000000000000000"), loop.create_future())
    store._submit(late)
    assert await asyncio.wait_for(late.done, 10) is True
    assert len(await _rows(pool)) == 2


def _store_row(*, event_id: str, kind: str = "page_view") -> list[Any]:
    """A row of the hit statement, as the use case builds it."""
    row_id = uuid.uuid4()
    return [
        row_id, TENANT_ID, kind, "PageView", event_id, datetime.now(UTC), datetime.now(UTC),
        None, None, "taSESSION0000000000001", "https://lp.shop.example.com/", None, None, None,
        None, "177.67.82.9", "Mozilla/5.0", {}, {}, None, None,
        *outbox.enqueue_params(routing_key=INGEST_EVENTS, message_id=str(row_id),
                               message_type="trackai.ingestion.v1.IngestEvent", body=b""),
    ]  # fmt: skip
