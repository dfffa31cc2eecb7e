"""HTTP baselines: a bare ASGI app and a FastAPI POST no-op under uvicorn (uvloop, httptools).

``http_run`` is the reusable part: later suites (ingestion webhooks) start their own server and
measure it the same way, with ratios to the figures registered here.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

from bench.context import BenchContext
from bench.http_load import build_request, json_body, run_load
from bench.registry import Metric, Ref, RunOnce, benchmark
from bench.servers import HOST, Server, uvicorn_server

#: Concurrent keep-alive connections of the load generator.
CONNECTIONS = 32
BARE = "baseline.http.bare_asgi"
FASTAPI = "baseline.http.fastapi_noop"


def http_metrics(ratio_to: str | None = None, *, half_rate: bool = False) -> list[Metric]:
    """Throughput and latency percentiles; each a ratio to ``ratio_to``'s same metric if given.

    ``half_rate`` adds the latency measured when the load is paced at half the throughput that
    the same round just reached (how a server behaves with headroom, not at saturation).
    """

    def ref(metric: str) -> Ref | None:
        return Ref(ratio_to, metric) if ratio_to else None

    metrics = [
        Metric("throughput", "req/s", ratio_to=ref("throughput")),
        Metric("p50", "ms", higher_is_better=False, ratio_to=ref("p50")),
        Metric("p99", "ms", higher_is_better=False, ratio_to=ref("p99")),
        # Where the CPU went: a server near 100% of a core is saturated (one uvicorn worker is
        # one thread); a load generator near 100% means the figure is the generator's limit.
        Metric("server_cpu", "% core", higher_is_better=False),
        Metric("loadgen_cpu", "% core", higher_is_better=False),
        # Server CPU per request: comparable across runs even when the shared cores, not the
        # server, limited the throughput.
        Metric(
            "server_ms_per_req", "ms cpu", higher_is_better=False, ratio_to=ref("server_ms_per_req")
        ),
    ]
    if half_rate:
        metrics += [
            Metric("half_rate", "req/s"),
            Metric("p50_at_half", "ms", higher_is_better=False),
            Metric("p99_at_half", "ms", higher_is_better=False),
        ]
    return metrics


def http_run(
    ctx: BenchContext,
    server: Server,
    request: bytes,
    expected_status: int,
    *,
    half_rate: bool = False,
) -> RunOnce:
    """One run: closed loop with C connections, then (``half_rate``) paced at half of it."""
    seconds = ctx.seconds(2.0, 1.0)

    async def once() -> dict[str, float]:
        server_cpu, own_cpu = server.cpu_seconds(), time.process_time()
        result = await run_load(
            HOST,
            server.port,
            request=request,
            connections=CONNECTIONS,
            seconds=seconds,
            expected_status=expected_status,
        )
        figures = {
            "throughput": result.rate,
            "p50": result.latency_ms(50),
            "p99": result.latency_ms(99),
            "server_cpu": 100 * (server.cpu_seconds() - server_cpu) / result.seconds,
            "loadgen_cpu": 100 * (time.process_time() - own_cpu) / result.seconds,
        }
        figures["server_ms_per_req"] = figures["server_cpu"] * 10 / result.rate
        errors = result.errors
        if half_rate:
            paced = await run_load(
                HOST,
                server.port,
                request=request,
                connections=CONNECTIONS,
                seconds=seconds,
                expected_status=expected_status,
                rate=result.rate / 2,
            )
            errors += paced.errors
            figures |= {
                "half_rate": paced.rate,
                "p50_at_half": paced.latency_ms(50),
                "p99_at_half": paced.latency_ms(99),
            }
        if errors:
            raise RuntimeError(f"{errors} responses were not {expected_status}")
        return figures

    return once


@contextlib.asynccontextmanager
async def serve_and_drive(
    ctx: BenchContext, app: str, path: str, expected_status: int, *, half_rate: bool = False
) -> AsyncIterator[RunOnce]:
    """Serve ``app`` under uvicorn; yield runs POSTing a 1 KB JSON body to ``path``."""
    async with uvicorn_server(app) as server:
        request = build_request(HOST, server.port, "POST", path, json_body(1024))
        yield http_run(ctx, server, request, expected_status, half_rate=half_rate)


@benchmark(BARE, metrics=http_metrics())
async def bare_asgi(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """Raw ASGI callable answering 200, 32 keep-alive connections, 1 KB POST body."""
    async with serve_and_drive(ctx, "bench.apps:bare_app", "/", 200) as run:
        yield run


@benchmark(FASTAPI, metrics=http_metrics(ratio_to=BARE, half_rate=True))
async def fastapi_noop(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """FastAPI POST route reading a 1 KB JSON body, answering 202; ratio to bare ASGI."""
    async with serve_and_drive(ctx, "bench.apps:fastapi_app", "/noop", 202, half_rate=True) as run:
        yield run
