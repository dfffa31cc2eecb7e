"""Ingestion webhook acceptance against the real ``python -m trackai_ingestion serve`` process:
verify the Kiwify signature, normalise, hash, commit conversion + outbox + receipt, answer.

Every request is a different order (a repeated one would only measure the duplicate path), so the
load generator's request is built per send; figures are ratios to the FastAPI no-op baseline of
the same run. Around the service: its own database (``bench_<random>``, ingestion schema
migrated), a RabbitMQ prefix ``bench.<random>.`` (the outbox relay publishes for real), Redis for
the rate limiter, and an in-process tenant registry answering GetWebhookConfig over gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from functools import partial
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import asyncpg

from bench.context import BenchContext
from bench.http_load import LoadResult, build_request, run_load
from bench.registry import Metric, Ref, RunOnce, benchmark
from bench.servers import HOST, process_server
from bench.suites.baseline_http import CONNECTIONS, FASTAPI, http_metrics
from bench.suites.baseline_postgres import temporary_database
from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai_ingestion.adapters.repository import accept_row
from trackai_ingestion.domain.gateways import WebhookRequest
from trackai_ingestion.domain.model import Conversion
from trackai_ingestion.service_layer.ports import Accepted, RateDecision, Receipt
from trackai_ingestion.service_layer.webhooks import WebhookService
from trackai_kit import migrations
from trackai_kit.amqp import AmqpClient
from trackai_kit.logging import configure_logging
from trackai_kit.settings import AmqpSettings, LogSettings
from trackai_kit.topology import INGEST_EVENTS, ingestion_topology
from trackai_testing.ports import free_port
from trackai_testing.registry import FakeTenantRegistry, serve_registry

WEBHOOK = "ingestion.webhook_accept"
COLLECT = "ingestion.collect_accept"
#: The landing page of the collect hits (the tenant's allowed domain).
ORIGIN = "https://lp.bench.example"
Requests = Callable[[], bytes]
SERVICE_CPU = "ingestion.webhook_service_cpu"
KIWIFY_SECRET = "bench-kiwify-token"


def _order_template() -> bytes:
    """A Kiwify ``order_approved`` (real shape, ~1.3 KB) with ``@ORDER@`` in place of the id."""
    body = {
        "order_id": "@ORDER@",
        "order_ref": "cbQHbMQ",
        "order_status": "paid",
        "product_type": "payment",
        "payment_method": "credit_card",
        "store_id": "IUuICjDIMZh18ff",
        "installments": 1,
        "card_type": "visa",
        "created_at": "2026-06-08 11:53",
        "updated_at": "2026-06-08 11:53",
        "approved_date": "2026-06-08 11:53",
        "refunded_at": None,
        "webhook_event_type": "order_approved",
        "Product": {"product_id": str(uuid.UUID(int=7)), "product_name": "Curso de exemplo"},
        "Customer": {
            "full_name": "Maria Souza Lima",
            "first_name": "Maria",
            "email": "maria.souza@cliente-exemplo.com.br",
            "mobile": "+5511987654321",
            "CPF": "00000000000",
            "ip": "203.0.113.10",
            "city": "São Paulo",
            "state": "SP",
            "zipcode": "01001-000",
            "country": "br",
        },
        "Commissions": {
            "charge_amount": 19700,
            "product_base_price": 19700,
            "product_base_price_currency": "BRL",
            "kiwify_fee": 1500,
            "currency": "BRL",
            "my_commission": 18200,
        },
        "TrackingParameters": {
            "src": None,
            "sck": "s-0123456789abcdef",
            "utm_source": "facebook",
            "utm_medium": "cpc",
            "utm_campaign": "lancamento",
            "utm_content": None,
            "utm_term": None,
            "s1": None,
            "s2": None,
            "s3": None,
        },
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _requests(port: int, tenant_id: str) -> Iterator[bytes]:
    """Signed webhook requests, each a new order."""
    template = _order_template()
    run = secrets.token_hex(4)
    for n in itertools.count():
        body = template.replace(b"@ORDER@", f"bench-{run}-{n}".encode())
        signature = hmac.new(KIWIFY_SECRET.encode(), body, hashlib.sha1).hexdigest()
        path = f"/api/v1/webhooks/kiwify/{tenant_id}?signature={signature}"
        yield build_request(HOST, port, "POST", path, body)


async def _load(
    port: int,
    requests: Requests,
    seconds: float,
    rate: float | None = None,
    expected_status: int = 200,
) -> LoadResult:
    """A load run in which every request is new (a new order, a new hit)."""
    return await run_load(
        HOST,
        port,
        request=requests,
        connections=CONNECTIONS,
        seconds=seconds,
        expected_status=expected_status,
        rate=rate,
    )


def _tenant_config(tenant_id: str) -> prov.WebhookConfig:
    return prov.WebhookConfig(
        view=prov.TenantView(
            tenant=prov.Tenant(
                id=tenant_id,
                slug="bench",
                rate_limit_per_minute=100_000_000,
                # The collect hits' landing page (ingestion.sentry_cost).
                allowed_domains=["bench.example"],
            )
        ),
        gateways=[prov.GatewayCredential(gateway="kiwify", secret=KIWIFY_SECRET)],
    )


@contextlib.asynccontextmanager
async def _tenant_registry(tenant_id: str) -> AsyncIterator[int]:
    """An in-process registry serving one tenant (Kiwify secret; a limit the load never hits, so
    the Redis script still runs on every request but never refuses)."""
    registry = FakeTenantRegistry()  # type: ignore[abstract]  # the stubs mark every RPC abstract
    registry.webhook_configs[tenant_id] = _tenant_config(tenant_id)
    async with serve_registry(registry, "ingestion", ["GetWebhookConfig"]) as server:
        yield server.port


@contextlib.asynccontextmanager
async def _queues(amqp_url: str, prefix: str) -> AsyncIterator[None]:
    async with AmqpClient(AmqpSettings(url=amqp_url, prefix=prefix)) as amqp:
        await amqp.declare(ingestion_topology())
    try:
        yield
    finally:
        connection = await aio_pika.connect(amqp_url)
        try:
            channel = await connection.channel()
            for queue in ingestion_topology().prefixed(prefix).all_queues():
                await channel.queue_delete(queue.name)
        finally:
            await connection.close()


@contextlib.asynccontextmanager
async def _server_log() -> AsyncIterator[IO[bytes]]:
    """A temporary file for the served process's log lines; its warnings and errors are
    printed when the benchmark ends (the accepted-webhook lines are not)."""
    with tempfile.TemporaryFile() as log:
        try:
            yield log
        finally:
            log.seek(0)
            for line in log:
                if b'"level": "info"' not in line and b'"level": "debug"' not in line:
                    sys.stdout.write(line.decode(errors="replace"))


def _figures(closed: LoadResult, paced: LoadResult, cpu: dict[str, float]) -> dict[str, float]:
    if closed.errors or paced.errors:
        raise RuntimeError(f"{closed.errors + paced.errors} webhooks were not answered 200")
    return {
        "throughput": closed.rate,
        "p50": closed.latency_ms(50),
        "p99": closed.latency_ms(99),
        **cpu,
        # Server CPU per webhook: comparable across runs even when the shared cores, not the
        # server, limited the throughput.
        "server_ms_per_req": cpu["server_cpu"] * 10 / closed.rate,
        "half_rate": paced.rate,
        "p50_at_half": paced.latency_ms(50),
        "p99_at_half": paced.latency_ms(99),
    }


def _metrics() -> list[Metric]:
    # p99 at half rate compared with the no-op's own p99 at half rate.
    return [
        Metric(m.name, m.unit, m.higher_is_better, Ref(FASTAPI, m.name))
        if m.name == "p99_at_half"
        else m
        for m in http_metrics(ratio_to=FASTAPI, half_rate=True)
    ]


@benchmark(WEBHOOK, metrics=_metrics())
async def webhook_accept(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """Kiwify webhook, new order each: verify + normalise + commit, real service process."""
    served = _served(ctx, lambda port, tenant_id: partial(next, _requests(port, tenant_id)), 200)
    async with contextlib.aclosing(served) as runs:
        async for once in runs:
            yield once


#: A fixed rate for collect's latency, besides half of each run's maximum: the rate "half the
#: maximum" was before hits were group-committed (483 hits/s), so that p99 compares like for
#: like across changes that move the maximum.
COLLECT_FIXED_RATE = 480


@benchmark(
    COLLECT,
    metrics=[
        *_metrics(),
        Metric("p50_at_fixed", "ms", higher_is_better=False),
        Metric("p99_at_fixed", "ms", higher_is_better=False),
    ],
)
async def collect_accept(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """Page views as the tracking script sends them, new event id each: validate + commit (group
    commit) + publish by the relay, real service process; every hit counted into ingest-events;
    latency also at a fixed 480 hits/s."""
    served = _served(ctx, collect_requests, 204, fixed_rate=COLLECT_FIXED_RATE)
    async with contextlib.aclosing(served) as runs:
        async for once in runs:
            yield once


async def _served(
    ctx: BenchContext,
    requests_for: Callable[[int, str], Requests],
    expected_status: int,
    fixed_rate: float | None = None,
) -> AsyncGenerator[RunOnce]:
    """A served ingestion process and its relay, loaded closed-loop then at half that rate (and
    at ``fixed_rate``, if given); after each run, every answered request is checked to be one
    row and one published message."""
    settings = ctx.settings
    db_url = await migrated_database(ctx, f"ingestion.database.{expected_status}")
    tenant_id = str(uuid.uuid4())
    prefix = f"bench.{secrets.token_hex(6)}."
    port = free_port()
    env = serve_env(db_url, settings.amqp_url, prefix, port)
    relay_port = free_port()
    async with (
        _queues(settings.amqp_url, prefix),
        _tenant_registry(tenant_id) as registry_port,
        _server_log() as server_log,
        process_server(
            [sys.executable, "-m", "trackai_ingestion", "serve"],
            port,
            extra_env={**env, "PROVISIONER_GRPC_TARGET": f"127.0.0.1:{registry_port}"},
            stdout=server_log,
        ) as server,
        process_server(
            [sys.executable, "-m", "trackai_ingestion", "relay"],
            relay_port,
            extra_env={**env, "INGESTION_HTTP_PORT": str(relay_port)},
        ),
    ):
        requests = requests_for(port, tenant_id)
        seconds = ctx.seconds(2.0, 1.0)
        answered = 0

        async def once() -> dict[str, float]:
            nonlocal answered
            server_cpu, own_cpu = server.cpu_seconds(), time.process_time()
            closed = await _load(port, requests, seconds, expected_status=expected_status)
            cpu = {
                "server_cpu": 100 * (server.cpu_seconds() - server_cpu) / closed.seconds,
                "loadgen_cpu": 100 * (time.process_time() - own_cpu) / closed.seconds,
            }
            paced = await _load(
                port, requests, seconds, rate=closed.rate / 2, expected_status=expected_status
            )
            figures = _figures(closed, paced, cpu)
            answered += closed.requests + paced.requests
            if fixed_rate is not None:
                fixed = await _load(
                    port, requests, seconds, rate=fixed_rate, expected_status=expected_status
                )
                if fixed.errors:
                    raise RuntimeError(f"{fixed.errors} requests were not {expected_status}")
                figures |= {
                    "p50_at_fixed": fixed.latency_ms(50),
                    "p99_at_fixed": fixed.latency_ms(99),
                }
                answered += fixed.requests
            await _every_answer_stored_and_published(
                db_url, tenant_id, settings.amqp_url, f"{prefix}{INGEST_EVENTS}", answered
            )
            return figures

        yield once


async def _every_answer_stored_and_published(
    db_url: str, tenant_id: str, amqp_url: str, queue: str, answered: int
) -> None:
    """Each answered request is one row of the tenant, and the relay published each row's message
    once (the queue has no consumer: its depth counts them). Waits up to 60 s for the relay."""
    conn = await asyncpg.connect(db_url)
    try:
        stored = await conn.fetchval(
            "SELECT count(*) FROM ingestion.events WHERE tenant_id = $1", uuid.UUID(tenant_id)
        )
    finally:
        await conn.close()
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        deadline = time.monotonic() + 60
        while True:
            declared = await channel.declare_queue(queue, passive=True)
            depth = declared.declaration_result.message_count or 0
            if depth >= stored or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    finally:
        await connection.close()
    if not stored == depth == answered:
        raise RuntimeError(f"{answered} answered, {stored} stored, {depth} published")


def collect_requests(port: int, tenant_id: str, hits_per_session: int = 0) -> Requests:
    """Page views as the tracking script sends them (``text/plain`` JSON, an allowed Origin),
    a new event id each; all of one visitor's session, or a new session every
    ``hits_per_session`` hits (what a consumer folding hits into sessions sees)."""
    run = secrets.token_hex(4)

    def build(n: int) -> bytes:
        session = n // hits_per_session if hits_per_session else 0
        body = json.dumps(
            {
                "type": "page_view",
                "session_id": f"ta{run}session{session:010d}",
                "event_id": f"ev{run}{n:012d}",
                "page_url": f"{ORIGIN}/oferta?utm_source=facebook&fbclid=IwAR2xYz{run}",
                "referrer": "https://l.facebook.com/",
                "fbclid": f"IwAR2xYz{run}",
                "fbp": "fb.1.1767225600000.1234567890",
                "utm_source": "facebook",
                "utm_medium": "cpc",
                "utm_campaign": "lancamento",
            },
            separators=(",", ":"),
        ).encode()
        head = (
            f"POST /api/v1/collect/{tenant_id} HTTP/1.1\r\n"
            f"Host: {HOST}:{port}\r\n"
            "Content-Type: text/plain;charset=UTF-8\r\n"
            f"Origin: {ORIGIN}\r\n"
            "User-Agent: Mozilla/5.0 (Linux; Android 14) Chrome/131.0 Mobile Safari/537.36\r\n"
            f"Content-Length: {len(body)}\r\n"
            "\r\n"
        )
        return head.encode("ascii") + body

    return partial(next, map(build, itertools.count()))


def serve_env(db_url: str, amqp_url: str, prefix: str, port: int) -> dict[str, str]:
    """The environment of a served ingestion process on ``port``, as the chart deploys it."""
    return {
        "DATABASE_URL": db_url,
        "AMQP_URL": amqp_url,
        "AMQP_PREFIX": prefix,
        "INGESTION_HTTP_PORT": str(port),
        "INGESTION_GRPC_PORT": str(free_port()),
        "TRACKAI_ENV": "test",
        # As deployed (the chart's default): one JSON line per accepted webhook, into a file.
        "LOG_LEVEL": "INFO",
        # As deployed by the chart: the relay runs in its own process, beside `serve`.
        "INGESTION_RELAY_IN_SERVE": "false",
        # The collect ceilings are decided in Redis as deployed, but so high that the load (one
        # tenant, from loopback) is never refused, as the tenant's webhook limit above.
        "INGESTION_COLLECT_TENANT_RATE_LIMIT_PER_MINUTE": "100000000",
    }


async def migrated_database(ctx: BenchContext, name: str = "ingestion.database") -> str:
    """The URL of the run's ingestion database ``name`` (created once per run, schema migrated).
    Benchmarks whose relays run at the same time need databases of their own: a relay publishes
    every row of its outbox, whichever benchmark wrote it."""
    settings = ctx.settings
    database = await ctx.shared(name, lambda: temporary_database(settings.database_url))
    db_url = _database_url(settings.database_url, database)
    await asyncio.to_thread(migrations.upgrade, "ingestion", db_url)
    return db_url


def _database_url(server_url: str, database: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{database}"))


class _OneTenant:
    def __init__(self, config: prov.WebhookConfig) -> None:
        self._config = config

    async def get(self, tenant_ref: str) -> prov.WebhookConfig | None:
        return self._config if tenant_ref == self._config.view.tenant.id else None


class _NoLimit:
    async def acquire(self, tenant_id: str, limit_per_minute: int) -> RateDecision:
        return RateDecision(True)


class _RowsOnly:
    """Builds the exact row the accept statement would write (message included), writes nothing."""

    rows = 0

    async def accept(
        self, tenant_id: uuid.UUID, conversion: Conversion, receipt: Receipt
    ) -> Accepted:
        accept_row(tenant_id, conversion, receipt)  # the work measured; nothing is written
        self.rows += 1
        return Accepted(uuid.uuid4(), duplicate=False)

    async def record(self, tenant_id: uuid.UUID, receipt: Receipt) -> None:
        raise AssertionError(f"the benchmark's webhook was not accepted: {receipt.reason}")


@benchmark(
    SERVICE_CPU,
    metrics=[
        Metric(
            "service_ms_per_webhook",
            "ms cpu",
            higher_is_better=False,
            ratio_to=Ref(FASTAPI, "server_ms_per_req"),
        ),
    ],
)
async def webhook_service_cpu(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """The webhook's own work without I/O (verify, parse, normalise, hash, redact, row + message),
    in CPU per webhook; ratio to the no-op's whole request. Above 1.0x, 0.5x of the no-op's
    throughput is out of reach: the route does the no-op's work plus this."""
    # As in the served process of `ingestion.webhook_accept`: warnings only, JSON lines.
    configure_logging(LogSettings(level="WARNING"), "bench")
    tenant_id = str(uuid.uuid4())
    store = _RowsOnly()
    service = WebhookService(
        _OneTenant(_tenant_config(tenant_id)), _NoLimit(), store, default_rate_limit=100
    )
    template = _order_template()
    run = secrets.token_hex(4)
    headers = {"content-type": "application/json", "user-agent": "bench"}
    orders = itertools.count()

    def webhook() -> WebhookRequest:
        body = template.replace(b"@ORDER@", f"cpu-{run}-{next(orders)}".encode())
        signature = hmac.new(KIWIFY_SECRET.encode(), body, hashlib.sha1).hexdigest()
        return WebhookRequest(body, headers, {"signature": signature})

    batch = ctx.scale(2000, 500)

    async def once() -> dict[str, float]:
        # The requests are built (and signed) outside the measured time, as a gateway would.
        webhooks = [webhook() for _ in range(batch)]
        before, started = store.rows, time.thread_time()
        for request in webhooks:
            await service.receive("kiwify", tenant_id, request)
        spent = time.thread_time() - started
        if store.rows - before != batch:
            raise RuntimeError(f"{batch - (store.rows - before)} webhooks were not accepted")
        return {"service_ms_per_webhook": spent * 1000 / batch}

    yield once
