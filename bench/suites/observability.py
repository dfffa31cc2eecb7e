"""What production observability costs the ingress: the real ``python -m trackai_ingestion
serve`` twice under the same webhook and collect load, measured in turn.

``ingestion.sentry_cost``: without ``SENTRY_DSN`` and with one pointing at the sandbox's Sentry
fake (a real HTTP envelope endpoint); neither process may send Sentry anything during the load
(a request that errors would, and the round fails then). ``ingestion.metrics_cost``: with
``METRICS_PROMETHEUS`` off and on, the latter scraped after every slice.

The figure is server CPU per request, comparable across rounds even when the shared cores, not
the server, limit the throughput; the cost is the relative increase of the variant (issues 19
and 13: under 5 %).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import secrets
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import httpx

from bench.context import BenchContext
from bench.http_load import build_request, json_body, run_load
from bench.registry import Metric, RunOnce, benchmark
from bench.servers import HOST, Server, process_server, uvicorn_server
from bench.suites.baseline_http import CONNECTIONS
from bench.suites.ingestion import (
    KIWIFY_SECRET,
    Requests,
    _order_template,
    _queues,
    _server_log,
    _tenant_registry,
    collect_requests,
    migrated_database,
    serve_env,
)
from trackai_sandbox.sentry import SentrySink
from trackai_testing.ports import free_port

SENTRY_COST = "ingestion.sentry_cost"
METRICS_COST = "ingestion.metrics_cost"
OBSERVABILITY_COST = "ingestion.observability_cost"
NOOP_OBSERVABILITY_COST = "baseline.http.observability_cost"


def _webhooks(port: int, tenant_id: str) -> Requests:
    """Signed Kiwify webhooks, a new order each (as ``ingestion.webhook_accept`` sends)."""
    template, run = _order_template(), secrets.token_hex(4)

    def build(n: int) -> bytes:
        body = template.replace(b"@ORDER@", f"cost-{run}-{n}".encode())
        signature = hmac.new(KIWIFY_SECRET.encode(), body, hashlib.sha1).hexdigest()
        path = f"/api/v1/webhooks/kiwify/{tenant_id}?signature={signature}"
        return build_request(HOST, port, "POST", path, body)

    return partial(next, map(build, itertools.count()))


def _metrics(variant: str, routes: tuple[str, ...] = ("webhook", "collect")) -> list[Metric]:
    metrics = []
    for route in routes:
        metrics += [
            Metric(f"{route}_ms", "ms cpu", higher_is_better=False),
            Metric(f"{route}_ms_{variant}", "ms cpu", higher_is_better=False),
            Metric(f"{route}_cost", "%", higher_is_better=False),
        ]
    return metrics


VariantEnv = Callable[[bool], dict[str, str]]


async def _paired_servers(
    ctx: BenchContext, stack: contextlib.AsyncExitStack, variant_env: VariantEnv
) -> tuple[dict[bool, Server], str]:
    """Two served ingestion processes on one database, the second with ``variant_env(True)``."""
    settings = ctx.settings
    db_url = await migrated_database(ctx)
    tenant_id = str(uuid.uuid4())
    prefix = f"bench.{secrets.token_hex(6)}."
    await stack.enter_async_context(_queues(settings.amqp_url, prefix))
    registry_port = await stack.enter_async_context(_tenant_registry(tenant_id))
    servers: dict[bool, Server] = {}
    for variant in (False, True):
        port = free_port()
        env = {
            **serve_env(db_url, settings.amqp_url, prefix, port),
            "PROVISIONER_GRPC_TARGET": f"127.0.0.1:{registry_port}",
            **variant_env(variant),
        }
        log = await stack.enter_async_context(_server_log())
        servers[variant] = await stack.enter_async_context(
            process_server(
                [sys.executable, "-m", "trackai_ingestion", "serve"],
                port,
                extra_env=env,
                stdout=log,
            )
        )
    return servers, tenant_id


Routes = dict[str, tuple[dict[bool, Requests], int]]


def _ingress_routes(servers: dict[bool, Server], tenant_id: str) -> Routes:
    """Signed webhooks (200) and collect page views (204) for each of the two processes."""
    return {
        "webhook": ({d: _webhooks(s.port, tenant_id) for d, s in servers.items()}, 200),
        "collect": ({d: collect_requests(s.port, tenant_id) for d, s in servers.items()}, 204),
    }


def _alternating_rounds(
    ctx: BenchContext,
    servers: dict[bool, Server],
    routes: Routes,
    variant: str,
    after_slice: Callable[[Server, bool], Awaitable[None]] | None = None,
) -> RunOnce:
    """One run: server CPU per request of each route on each process, in short slices
    alternating between the two (the first one alternating too), so the drift of a shared
    machine lands on both alike; ``*_cost`` is the variant's relative increase."""
    slices, seconds = 4, ctx.seconds(0.75, 0.4)

    async def once() -> dict[str, float]:
        figures: dict[str, float] = {}
        for route, (requests, status) in routes.items():
            spent = {False: 0.0, True: 0.0}
            answered = {False: 0, True: 0}
            for index in range(slices):
                for with_variant in (False, True) if index % 2 else (True, False):
                    server = servers[with_variant]
                    before = server.cpu_seconds()
                    count = await _answered(server, requests[with_variant], seconds, status)
                    if after_slice is not None:
                        await after_slice(server, with_variant)
                    spent[with_variant] += server.cpu_seconds() - before
                    answered[with_variant] += count
            base = spent[False] * 1000 / answered[False]
            observed = spent[True] * 1000 / answered[True]
            figures |= {
                f"{route}_ms": base,
                f"{route}_ms_{variant}": observed,
                f"{route}_cost": 100 * (observed - base) / base,
            }
        return figures

    return once


async def _answered(server: Server, requests: Requests, seconds: float, expected: int) -> int:
    """Requests answered during one closed-loop load (any refusal fails the round)."""
    result = await run_load(
        HOST,
        server.port,
        request=requests,
        connections=CONNECTIONS,
        seconds=seconds,
        expected_status=expected,
    )
    if result.errors or not result.requests:
        raise RuntimeError(f"{result.errors} of {result.requests} requests were refused")
    return result.requests


@benchmark(SENTRY_COST, metrics=_metrics("dsn"))
async def sentry_cost(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """Server CPU per webhook and per collect hit, without and with SENTRY_DSN (target <= 5 %)."""
    async with contextlib.AsyncExitStack() as stack:
        sink = stack.enter_context(SentrySink())
        servers, tenant_id = await _paired_servers(
            ctx, stack, lambda with_dsn: {"SENTRY_DSN": sink.dsn if with_dsn else ""}
        )
        measure = _alternating_rounds(ctx, servers, _ingress_routes(servers, tenant_id), "dsn")

        async def once() -> dict[str, float]:
            figures = await measure()
            # Error events only: a request that failed would send one. (Other items, e.g. the
            # SDK's session updates, are not about the requests.)
            sent = await asyncio.to_thread(sink.items, "event")
            if sent:
                raise RuntimeError(f"the served process sent {len(sent)} error event(s)")
            return figures

        yield once


@benchmark(METRICS_COST, metrics=_metrics("metrics"))
async def metrics_cost(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """Server CPU per webhook and per collect hit, without and with the Prometheus metrics
    (``METRICS_PROMETHEUS``), the latter scraped after every slice (target < 5 %)."""
    async with contextlib.AsyncExitStack() as stack:
        servers, tenant_id = await _paired_servers(
            ctx, stack, lambda on: {"METRICS_PROMETHEUS": "true" if on else "false"}
        )
        async with httpx.AsyncClient(timeout=10) as http:

            async def scrape(server: Server, with_metrics: bool) -> None:
                # As Prometheus would, once per slice (a real one: every 15-30 s); the
                # collection's CPU counts against the process with metrics.
                answer = await http.get(f"http://{HOST}:{server.port}/metrics")
                wanted = 200 if with_metrics else 404
                if answer.status_code != wanted:
                    raise RuntimeError(f"/metrics answered {answer.status_code}, not {wanted}")
                if with_metrics and b"trackai_ingestion_webhooks_total" not in answer.content:
                    raise RuntimeError("the webhook counter is missing from /metrics")

            yield _alternating_rounds(
                ctx, servers, _ingress_routes(servers, tenant_id), "metrics", scrape
            )


def _production(sink: SentrySink, on: bool) -> dict[str, str]:
    """Observability as the chart deploys it (on) or none at all (off): Sentry with a DSN, the
    Prometheus endpoint, and the chart's OpenTelemetry default (no OTLP exporter)."""
    return {
        "SENTRY_DSN": sink.dsn if on else "",
        "METRICS_PROMETHEUS": "true" if on else "false",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
    }


def _scraper(
    http: httpx.AsyncClient, counter: bytes | None
) -> Callable[[Server, bool], Awaitable[None]]:
    """A scrape of ``/metrics`` after every slice of the observed process (as Prometheus would,
    far more often); ``counter`` must be in it."""

    async def scrape(server: Server, observed: bool) -> None:
        if not observed:
            return
        answer = await http.get(f"http://{HOST}:{server.port}/metrics")
        if answer.status_code != 200 or (counter is not None and counter not in answer.content):
            raise RuntimeError(f"/metrics answered {answer.status_code} without the counter")

    return scrape


async def _no_error_events(sink: SentrySink) -> None:
    sent = await asyncio.to_thread(sink.items, "event")
    if sent:
        raise RuntimeError(f"a served process sent {len(sent)} error event(s)")


@benchmark(OBSERVABILITY_COST, metrics=_metrics("prod"))
async def observability_cost(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """Server CPU per webhook and per collect hit with no observability and with production's
    (Sentry DSN, /metrics scraped, the chart's OTel settings) (target <= 5 %)."""
    async with contextlib.AsyncExitStack() as stack:
        sink = stack.enter_context(SentrySink())
        servers, tenant_id = await _paired_servers(ctx, stack, partial(_production, sink))
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        measure = _alternating_rounds(
            ctx,
            servers,
            _ingress_routes(servers, tenant_id),
            "prod",
            _scraper(http, b"trackai_ingestion_webhooks_total"),
        )

        async def once() -> dict[str, float]:
            figures = await measure()
            await _no_error_events(sink)
            return figures

        yield once


@benchmark(NOOP_OBSERVABILITY_COST, metrics=_metrics("prod", ("noop",)))
async def noop_observability_cost(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """The FastAPI no-op route on the kit's service app, with no observability and with
    production's, the same way (target <= 5 %)."""
    async with contextlib.AsyncExitStack() as stack:
        sink = stack.enter_context(SentrySink())
        servers: dict[bool, Server] = {}
        for on in (False, True):
            servers[on] = await stack.enter_async_context(
                uvicorn_server(
                    "bench.apps:observed_noop_app", factory=True, extra_env=_production(sink, on)
                )
            )
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        routes: Routes = {"noop": ({on: _noop(s.port) for on, s in servers.items()}, 202)}
        measure = _alternating_rounds(ctx, servers, routes, "prod", _scraper(http, None))

        async def once() -> dict[str, float]:
            figures = await measure()
            await _no_error_events(sink)
            return figures

        yield once


def _noop(port: int) -> Requests:
    """The HTTP baselines' 1 KB JSON body, posted to the no-op route."""
    request = build_request(HOST, port, "POST", "/noop", json_body(1024))
    return partial(next, itertools.repeat(request))
