"""HTTP baselines: a bare ASGI app and a FastAPI POST no-op under uvicorn (uvloop, httptools)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

from bench.context import BenchContext
from bench.http_load import build_request, json_body, run_load
from bench.registry import Metric, Ref, RunOnce, benchmark
from bench.servers import HOST, uvicorn_server

#: Concurrent keep-alive connections of the load generator.
CONNECTIONS = 32
BARE = "baseline.http.bare_asgi"
FASTAPI = "baseline.http.fastapi_noop"


def http_metrics(ratio_to: str | None = None) -> list[Metric]:
    """Throughput and latency percentiles; each a ratio to ``ratio_to``'s same metric if given."""

    def ref(metric: str) -> Ref | None:
        return Ref(ratio_to, metric) if ratio_to else None

    return [
        Metric("throughput", "req/s", ratio_to=ref("throughput")),
        Metric("p50", "ms", higher_is_better=False, ratio_to=ref("p50")),
        Metric("p99", "ms", higher_is_better=False, ratio_to=ref("p99")),
        # Where the CPU went: a server near 100% of a core is saturated (one uvicorn worker is
        # one thread); a load generator near 100% means the figure is the generator's limit.
        Metric("server_cpu", "% core", higher_is_better=False),
        Metric("loadgen_cpu", "% core", higher_is_better=False),
    ]


@contextlib.asynccontextmanager
async def drive(
    ctx: BenchContext, app: str, path: str, expected_status: int
) -> AsyncIterator[RunOnce]:
    """Serve ``app``, warm it up, and yield a run: C connections POSTing a 1 KB JSON body."""
    async with uvicorn_server(app) as server:
        request = build_request(HOST, server.port, "POST", path, json_body(1024))
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
            if result.errors:
                raise RuntimeError(f"{result.errors} responses were not {expected_status}")
            return {
                "throughput": result.rate,
                "p50": result.latency_ms(50),
                "p99": result.latency_ms(99),
                "server_cpu": 100 * (server.cpu_seconds() - server_cpu) / result.seconds,
                "loadgen_cpu": 100 * (time.process_time() - own_cpu) / result.seconds,
            }

        await once()  # warm-up, discarded
        yield once


@benchmark(BARE, metrics=http_metrics())
async def bare_asgi(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """Raw ASGI callable answering 200, 32 keep-alive connections, 1 KB POST body."""
    async with drive(ctx, "bench.apps:bare_app", "/", 200) as run:
        yield run


@benchmark(FASTAPI, metrics=http_metrics(ratio_to=BARE))
async def fastapi_noop(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """FastAPI POST route reading a 1 KB JSON body, answering 202; ratio to bare ASGI."""
    async with drive(ctx, "bench.apps:fastapi_app", "/noop", 202) as run:
        yield run
