"""The console's events page over a realistic volume: ``console.events_page``.

1,000,000 conversions (50,000 with ``--quick``) across 1,000 tenants, the largest holding 15 %
and the rest a long tail (the second ~3 %, the smallest a few hundred), are written straight into
ingestion's, the matcher's and the dispatcher's own tables (``INSERT ... SELECT`` over
``generate_series``, once per run, then ``ANALYZE``): every approved sale registered and matched
(55 % deterministic, 20 % semi, 10 % probabilistic, 15 % without a click) and dispatched (90 %
sent, the rest pending, failing, dead or expired), over the last 30 days.

The real ``serve`` processes of ingestion, the matcher, the dispatcher and the provisioner (the
funnel list of the page) answer the console's gRPC reads; the real console serves the pages.
Signed in as a seller of the largest tenant, each run times, from a local keep-alive client, the
full response of the events page (first page, each filter, the order-id search) and of a deep
"Carregar mais" page (keyset token ~10,000 rows down), requests of every variant interleaved.
The ratio is to the console's own ``/health`` (the kit's route, no I/O) timed by the same client in
the same runs: what the page costs beyond an HTTP round trip to the same process. The issue's
target: p95 ≤ 100 ms for every variant.

``coverage_*`` time the dispatcher's ``GetParameterCoverage`` (the EMQ page's parameter coverage)
over the largest tenant's last 7 days, called directly over gRPC.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import asyncpg
import httpx

from bench.context import BenchContext
from bench.registry import Metric, Ref, RunOnce, benchmark
from bench.servers import HOST, process_server
from bench.stats import percentile
from bench.suites.baseline_postgres import temporary_database
from bench.suites.console import _session
from bench.suites.ingestion import _database_url, _server_log
from trackai.dispatcher.v1 import dispatcher_service_pb2 as disp
from trackai.dispatcher.v1 import dispatcher_service_pb2_grpc as disp_grpc
from trackai_kit import migrations
from trackai_kit.grpc import client_channel
from trackai_kit.settings import local_dev_token
from trackai_testing.plugin import _delete_prefixed
from trackai_testing.ports import free_port

EVENTS = "console.events_page"
TENANTS = 1000
#: Share of all conversions held by the largest tenant.
LARGEST_SHARE = 0.15
DAYS = 30
SERVICES = ("ingestion", "matcher", "dispatcher", "provisioner")

#: Variant -> query of ``/eventos`` (``deep`` is the "Carregar mais" fragment).
#: In every rendered row (its link to the detail page).
ROW_MARKER = b'href="/eventos/'
VARIANTS = (
    "first", "status", "sent", "matched", "received", "combined", "gateway", "stage", "funnel",
    "period", "order", "deep",
)  # fmt: skip
#: What each variant's page must show: rows, except ``received`` (empty by construction, see
#: ``_probes``) and ``combined`` (0.06 % of the events: with ``--quick``'s 50,000 conversions
#: the largest tenant may have none in the week), which must show rows or the empty message.
EMPTY_MARKER = b"Nenhum evento neste filtro"
MARKERS = {"received": (EMPTY_MARKER,), "combined": (ROW_MARKER, EMPTY_MARKER)}


def tenant_uuid(index: int) -> uuid.UUID:
    """The seeded tenant ``index`` (0 is the largest): ``md5('bench-tenant-<index>')``."""
    return uuid.UUID(hashlib.md5(f"bench-tenant-{index}".encode()).hexdigest())


# One row per conversion: the tenant (0 holds LARGEST_SHARE, the others a long tail: tenant
# 1 + floor(999 r^2) for a pseudo-random r), and the draws every table derives its columns from.
_SEED = """
CREATE TEMP TABLE seed AS
SELECT i,
       md5('bench-tenant-' || t)::uuid AS tenant_id,
       t,
       md5('bench-conv-' || i)::uuid AS conversion_id,
       md5('bench-e1-' || i) || md5('bench-e2-' || i) AS event_id,
       'pedido-' || i AS order_id,
       (ARRAY['kiwify', 'hotmart', 'eduzz', 'perfectpay', 'cakto'])[1 + h1 % 5] AS gateway,
       CASE WHEN h2 % 100 < 80 THEN 'approved'
            WHEN h2 % 100 < 88 THEN 'pending_payment'
            WHEN h2 % 100 < 93 THEN 'refunded'
            WHEN h2 % 100 < 96 THEN 'refused'
            WHEN h2 % 100 < 98 THEN 'canceled'
            ELSE 'chargeback' END AS status,
       now() - (h3 % ($3 * 86400)) * interval '1 second' AS event_time,
       CASE WHEN h1 / 5 % 3 = 0 THEN NULL
            ELSE md5('bench-funnel-' || t || '-' || h1 / 5 % 3)::uuid END AS funnel_id,
       CASE WHEN h4 % 100 < 55 THEN 'deterministic'
            WHEN h4 % 100 < 75 THEN 'semi'
            WHEN h4 % 100 < 85 THEN 'probabilistic'
            ELSE 'none' END AS stage,
       CASE WHEN h5 % 100 < 90 THEN 'sent'
            WHEN h5 % 100 < 93 THEN 'pending'
            WHEN h5 % 100 < 96 THEN 'retrying'
            WHEN h5 % 100 < 99 THEN 'dead'
            ELSE 'expired' END AS state,
       h6 % 100 < 95 AS has_email,
       h6 / 100 % 100 < 80 AS has_phone,
       h6 / 10000 % 100 < 90 AS has_name,
       h7 % 100 < 60 AS has_ip,
       h7 / 100 % 100 < 50 AS has_click,
       h2 / 100 % 400 AS price
FROM (
    SELECT i,
           CASE WHEN i < $2 THEN 0
                ELSE 1 + floor(($4 - 1) * power(abs(hashint4(i)) % 1000003 / 1000003.0, 2))::int
           END AS t,
           abs(hashint4(i + 100000000)) AS h1, abs(hashint4(i + 200000000)) AS h2,
           abs(hashint4(i + 300000000)) AS h3, abs(hashint4(i + 400000000)) AS h4,
           abs(hashint4(i + 500000000)) AS h5, abs(hashint4(i + 600000000)) AS h6,
           abs(hashint4(i + 700000000)) AS h7
    FROM generate_series(0, $1 - 1) AS i
) AS draws
"""

_INGESTION = """
INSERT INTO ingestion.events (
    id, tenant_id, kind, gateway, order_id, status, gateway_status, event_time, received_at,
    amount, currency, product_id, product_name, payment_method, email_hash, phone_hash,
    first_name_hash, last_name_hash, country_hash, fbc, fbp, client_ip, user_agent, funnel_id)
SELECT conversion_id, tenant_id, 'conversion', gateway, order_id, status, upper(status),
       event_time, event_time + interval '4 seconds', 97 + price, 'BRL', 'prod-' || price % 20,
       'Curso ' || price % 20, (ARRAY['credit_card', 'pix', 'boleto'])[1 + price % 3],
       CASE WHEN has_email THEN md5('em' || i) || md5('em2' || i) END,
       CASE WHEN has_phone THEN md5('ph' || i) || md5('ph2' || i) END,
       CASE WHEN has_name THEN md5('fn' || i) || md5('fn2' || i) END,
       CASE WHEN has_name THEN md5('ln' || i) || md5('ln2' || i) END,
       '885036a0da3dff3c3e05bc79bf49382b12bc5098514ed57ce0875aba1aa2c40d',
       CASE WHEN has_click THEN 'fb.1.1700000000000.click' || i END,
       CASE WHEN has_click THEN 'fb.1.1700000000000.' || i END,
       CASE WHEN has_ip THEN ('10.' || i / 65536 % 256 || '.' || i / 256 % 256 || '.'
                              || i % 256)::inet END,
       CASE WHEN has_ip THEN 'Mozilla/5.0 (Linux; Android 14) Mobile Safari/537.36' END,
       -- A webhook names no funnel: its event gets its click's (the registry's, the dispatch's).
       NULL::uuid
FROM seed
"""

_MATCHES = """
INSERT INTO matcher.matches (
    id, tenant_id, gateway, order_id, conversion_id, purchase_time, stage, method, session_id,
    score, runner_up_score, evidence, emq, matched_at)
SELECT i + 1, tenant_id, gateway, order_id, conversion_id, event_time, stage,
       CASE WHEN stage <> 'none' THEN stage || '-rule' END,
       CASE WHEN stage <> 'none' THEN 'sess-' || i END,
       CASE stage WHEN 'deterministic' THEN 1.0 WHEN 'semi' THEN 0.9
                  WHEN 'probabilistic' THEN 0.7 END,
       CASE WHEN stage = 'probabilistic' THEN 0.4 END,
       '{}', 4 + price % 6, event_time + interval '5 seconds'
FROM seed WHERE status = 'approved'
"""

_REGISTRY = """
INSERT INTO matcher.dedupe_registry (
    event_id, tenant_id, gateway, order_id, event_name, source_status, match_id, emq,
    registered_at, conversion_id, event_time, funnel_id, pixel_id, outcome)
SELECT event_id, tenant_id, gateway, order_id, 'Purchase', 'approved', i + 1, 4 + price % 6,
       event_time + interval '5 seconds', conversion_id, event_time, funnel_id,
       '1000000' || t, 'queued'
FROM seed WHERE status = 'approved'
"""

_DISPATCHES = """
INSERT INTO dispatcher.dispatches (
    event_id, tenant_id, pixel_id, event_name, event_time, state, attempts, payload,
    match_stage, match_score, emq, reason, next_attempt_at, created_at, updated_at, sent_at,
    funnel_id, conversion_id)
SELECT event_id, tenant_id, '1000000' || t, 'Purchase', event_time, state,
       CASE WHEN state = 'pending' THEN 0 WHEN state = 'sent' THEN 1 ELSE 3 END,
       jsonb_build_object(
           'event_name', 'Purchase', 'event_id', event_id, 'action_source', 'website',
           'user_data', jsonb_strip_nulls(jsonb_build_object(
               'em', CASE WHEN has_email THEN jsonb_build_array(md5('em' || i)) END,
               'ph', CASE WHEN has_phone THEN jsonb_build_array(md5('ph' || i)) END,
               'fn', CASE WHEN has_name THEN jsonb_build_array(md5('fn' || i)) END,
               'ln', CASE WHEN has_name THEN jsonb_build_array(md5('ln' || i)) END,
               'country', jsonb_build_array('br'),
               'fbc', CASE WHEN has_click THEN 'fb.1.1700000000000.click' || i END,
               'fbp', CASE WHEN has_click THEN 'fb.1.1700000000000.' || i END,
               'client_ip_address', CASE WHEN has_ip THEN '10.0.0.1' END,
               'client_user_agent', CASE WHEN has_ip THEN 'Mozilla/5.0' END))),
       -- The matcher's enum names, as the dispatcher stores them.
       CASE stage WHEN 'semi' THEN 'MATCH_STAGE_SEMI_DETERMINISTIC'
                  ELSE 'MATCH_STAGE_' || upper(stage) END,
       0.9, 4 + price % 6,
       CASE state WHEN 'dead' THEN 'meta_rejected' WHEN 'expired' THEN 'expired' END,
       CASE WHEN state = 'retrying' THEN now() + interval '5 minutes' END,
       event_time + interval '6 seconds', event_time + interval '7 seconds',
       CASE WHEN state = 'sent' THEN event_time + interval '7 seconds' END,
       funnel_id::text, conversion_id::text
FROM seed WHERE status = 'approved'
"""


#: The seeded tables, in load order (a registry row references its match).
_LOADS = (
    ("ingestion", "events", _INGESTION),
    ("matcher", "matches", _MATCHES),
    ("matcher", "dedupe_registry", _REGISTRY),
    ("dispatcher", "dispatches", _DISPATCHES),
)


async def seed(db_url: str, conversions: int) -> dict[str, float]:
    """Write the conversions into the three schemas; seconds spent per step.

    A bulk load: each table's secondary indexes (the migrations' own definitions, read back from
    ``pg_indexes``) are dropped before its rows go in and built again after, which is several
    times faster than maintaining them row by row. Constraint indexes stay.
    """
    took: dict[str, float] = {}
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("SET synchronous_commit = off; SET maintenance_work_mem = '256MB'")
        started = time.perf_counter()
        await conn.execute(_SEED, conversions, int(conversions * LARGEST_SHARE), DAYS, TENANTS)
        took["draws"] = time.perf_counter() - started
        for schema, table, sql in _LOADS:
            started = time.perf_counter()
            indexes = await conn.fetch(
                """
                SELECT indexname, indexdef FROM pg_indexes
                WHERE schemaname = $1 AND tablename = $2
                  AND indexname NOT IN (SELECT conname FROM pg_constraint)
                """,
                schema,
                table,
            )
            for index in indexes:
                await conn.execute(f'DROP INDEX {schema}."{index["indexname"]}"')
            await conn.execute(sql)
            for index in indexes:
                await conn.execute(index["indexdef"])
            await conn.execute(f"ANALYZE {schema}.{table}")
            took[schema] = took.get(schema, 0.0) + time.perf_counter() - started
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('matcher.matches', 'id'), $1)", conversions
        )
    finally:
        await conn.close()
    return took


def _token(event_time: datetime, conversion_id: uuid.UUID, tenant: uuid.UUID) -> str:
    """A ``ListConversions`` keyset token after this row (ingestion's token format)."""
    raw = json.dumps([event_time.isoformat(), str(conversion_id), str(tenant)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


async def _probes(db_url: str, tenant: uuid.UUID, deep_rows: int) -> dict[str, str]:
    """Query strings of the variants, from the largest tenant's own rows."""
    conn = await asyncpg.connect(db_url)
    try:
        week = datetime.now(UTC) - timedelta(days=7)
        deep = await conn.fetchrow(
            """
            SELECT id, event_time FROM ingestion.events
            WHERE tenant_id = $1 AND kind = 'conversion' AND event_time >= $2
            ORDER BY event_time DESC, id DESC OFFSET $3 LIMIT 1
            """,
            tenant,
            week,
            deep_rows,
        )
        # An order placed ~3 days ago: the search finds it within the default 7-day period.
        order = await conn.fetchval(
            """
            SELECT order_id FROM ingestion.events
            WHERE tenant_id = $1 AND kind = 'conversion' AND event_time < now() - interval '3 days'
            ORDER BY event_time DESC LIMIT 1
            """,
            tenant,
        )
        funnel = await conn.fetchval(
            "SELECT funnel_id FROM matcher.dedupe_registry"
            " WHERE tenant_id = $1 AND funnel_id IS NOT NULL LIMIT 1",
            tenant,
        )
    finally:
        await conn.close()
    if deep is None or order is None or funnel is None:
        raise RuntimeError("the seed holds too few rows of the largest tenant")
    return {
        "first": "/eventos",
        "status": "/eventos?" + urlencode({"status": "dead"}),
        "sent": "/eventos?" + urlencode({"status": "sent"}),
        "matched": "/eventos?" + urlencode({"status": "matched"}),
        # Approved and not matched yet: none in the seed (every approved sale is matched), so the
        # page reads ingestion's pages as far as it may (25, 100, 200, 200) and shows none.
        "received": "/eventos?" + urlencode({"status": "received"}),
        # Dead (3 %) and probabilistic (10 %) at the dispatcher, then Kiwify's (1 in 5) here.
        "combined": "/eventos?"
        + urlencode({"status": "dead", "estagio": "probabilistic", "gateway": "kiwify"}),
        "gateway": "/eventos?" + urlencode({"gateway": "hotmart"}),
        "stage": "/eventos?" + urlencode({"estagio": "probabilistic"}),
        "funnel": "/eventos?" + urlencode({"funil": str(funnel)}),
        "period": "/eventos?" + urlencode({"periodo": "hoje"}),
        "order": "/eventos?" + urlencode({"pedido": order}),
        "deep": "/eventos/tabela?"
        + urlencode({"cursor": _token(deep["event_time"], deep["id"], tenant), "mais": "1"}),
    }


async def _timed_get(
    client: httpx.AsyncClient, path: str, markers: tuple[bytes, ...] = (b"",)
) -> float:
    """Milliseconds to the full response; the body must carry one of ``markers`` (rows were
    rendered, or the page said it has none)."""
    started = time.perf_counter()
    response = await client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200 or not any(m in response.content for m in markers):
        raise RuntimeError(f"GET {path[:80]} answered {response.status_code} without its rows")
    return elapsed


def _metrics() -> list[Metric]:
    metrics = []
    for variant in VARIANTS:
        metrics.append(
            Metric(
                f"{variant}_p50", "ms", higher_is_better=False, ratio_to=Ref(EVENTS, "health_p50")
            )
        )
        metrics.append(
            Metric(
                f"{variant}_p95", "ms", higher_is_better=False, ratio_to=Ref(EVENTS, "health_p95")
            )
        )
    return [
        *metrics,
        Metric("worst_p95", "ms", higher_is_better=False, ratio_to=Ref(EVENTS, "health_p95")),
        Metric("health_p50", "ms", higher_is_better=False),
        Metric("health_p95", "ms", higher_is_better=False),
        Metric("coverage_p50", "ms", higher_is_better=False, ratio_to=Ref(EVENTS, "health_p50")),
        Metric("coverage_p95", "ms", higher_is_better=False, ratio_to=Ref(EVENTS, "health_p95")),
        Metric("largest_tenant", "conversions"),
    ]


@benchmark(EVENTS, metrics=_metrics())
async def events_page(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """Events page and filters, 1M conversions / 1,000 tenants, largest tenant; ratio to /health."""
    settings = ctx.settings
    database = await ctx.shared(
        "console.events.database", lambda: temporary_database(settings.database_url)
    )
    db_url = _database_url(settings.database_url, database)
    for service in (*SERVICES, "console"):
        await asyncio.to_thread(migrations.upgrade, service, db_url)
    conversions = ctx.scale(1_000_000, 50_000)
    took = await seed(db_url, conversions)
    print(
        f"{EVENTS}: seeded {conversions:,} conversions in "
        + ", ".join(f"{k} {v:.1f} s" for k, v in took.items()),
        file=sys.stderr,
        flush=True,
    )
    largest = tenant_uuid(0)
    # The deep page's token: this many of the largest tenant's rows of the week above it.
    paths = await _probes(db_url, largest, ctx.scale(10_000, 1_000))
    cookie = await _session(db_url, largest, f"seller-{secrets.token_hex(4)}@bench.example")
    prefix = f"bench.{secrets.token_hex(4)}."
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(_delete_prefixed, settings.amqp_url, prefix)
        console_port, grpc_ports = await _start_stack(stack, db_url, settings.amqp_url, prefix)
        client = await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=f"http://{HOST}:{console_port}",
                cookies={"trackai_session": cookie},
                timeout=30,
            )
        )
        # As the console calls it (the EMQ page), with the console's local/test identity.
        channel = await stack.enter_async_context(
            client_channel(f"{HOST}:{grpc_ports['dispatcher']}", local_dev_token("console"))
        )
        dispatcher = disp_grpc.DispatcherServiceStub(channel)
        coverage = disp.GetParameterCoverageRequest(tenant_id=str(largest))
        tenant_rows = await _count(db_url, largest)
        requests = ctx.scale(30, 10)

        async def covered() -> float:
            now = datetime.now(UTC)
            coverage.start_time.FromDatetime(now - timedelta(days=7))
            coverage.end_time.FromDatetime(now)
            started = time.perf_counter()
            answer = await dispatcher.GetParameterCoverage(coverage, timeout=30)
            if answer.events == 0:
                raise RuntimeError("GetParameterCoverage saw no events of the largest tenant")
            return (time.perf_counter() - started) * 1000

        async def once() -> dict[str, float]:
            samples: dict[str, list[float]] = {v: [] for v in (*VARIANTS, "health", "coverage")}
            # Interleaved: every variant sees the same drift of the shared machine's load.
            for _ in range(requests):
                for variant in VARIANTS:
                    markers = MARKERS.get(variant, (ROW_MARKER,))
                    samples[variant].append(await _timed_get(client, paths[variant], markers))
                samples["health"].append(await _timed_get(client, "/health", (b"ok",)))
                samples["coverage"].append(await covered())
            figures: dict[str, float] = {"largest_tenant": float(tenant_rows)}
            for name, values in samples.items():
                figures[f"{name}_p50"] = percentile(values, 50)
                figures[f"{name}_p95"] = percentile(values, 95)
            figures["worst_p95"] = max(figures[f"{v}_p95"] for v in VARIANTS)
            return figures

        yield once


async def _count(db_url: str, tenant: uuid.UUID) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM ingestion.events"
                " WHERE tenant_id = $1 AND kind = 'conversion'",
                tenant,
            )
        )
    finally:
        await conn.close()


async def _start_stack(
    stack: contextlib.AsyncExitStack, db_url: str, amqp_url: str, prefix: str
) -> tuple[int, dict[str, int]]:
    """The read APIs' ``serve`` processes and the console's, as ``make run`` starts them (one
    database, a schema each); the console's HTTP port and each service's gRPC port."""
    grpc_ports = {service: free_port() for service in SERVICES}
    for service in (*SERVICES, "console"):
        port = free_port()
        env = {
            "DATABASE_URL": db_url,
            "AMQP_URL": amqp_url,
            "AMQP_PREFIX": prefix,
            "TRACKAI_ENV": "test",
            "LOG_LEVEL": "WARNING",
            f"{service.upper()}_HTTP_PORT": str(port),
            f"{service.upper()}_GRPC_PORT": str(grpc_ports.get(service) or free_port()),
            "INGESTION_RELAY_IN_SERVE": "false",
        }
        if service == "console":
            env["CONSOLE_EMQ_SNAPSHOT_S"] = "86400"
            env.update({f"{s.upper()}_GRPC_TARGET": f"{HOST}:{p}" for s, p in grpc_ports.items()})
        log = await stack.enter_async_context(_server_log())
        await stack.enter_async_context(
            process_server(
                [sys.executable, "-m", f"trackai_{service}", "serve"],
                port,
                extra_env=env,
                startup_timeout=60,
                stdout=log,
            )
        )
    return port, grpc_ports
