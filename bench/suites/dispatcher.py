"""Dispatcher: delivery throughput against the Meta fake answering in 300 ms, as a ratio to the
bound concurrency x batch size / latency, and dispatch latency (enqueue to Meta's answer) at a
steady 200 events/s.

Real processes: ``python -m trackai_dispatcher consume`` and ``python -m trackai_sandbox serve
--only meta`` as children, each benchmark with its own database ``bench_<random>`` (dispatcher
schema migrated) and its own queue prefix ``bench.<random>.``; a tenant registry answering
GetMetaDestination runs in the benchmark process.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import aio_pika
import asyncpg
import httpx

from bench.context import BenchContext
from bench.registry import Metric, Ref, RunOnce, benchmark
from bench.servers import process_server
from bench.stats import percentile
from bench.suites.baseline_postgres import temporary_database
from trackai_testing.ports import free_port

PIXEL = "1234567890"
TOKEN = "sandbox-token"
META_LATENCY_MS = 300
THROUGHPUT_BATCH = 200
THROUGHPUT_WORKERS = 4
STEADY_RATE = 200
THROUGHPUT = "dispatcher.throughput_300ms"


@contextlib.asynccontextmanager
async def meta_fake(ctx: BenchContext) -> AsyncIterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "trackai_sandbox", "serve", "--only", "meta"]
    env = {"SANDBOX_META_PORT": str(port), "LOG_LEVEL": "WARNING"}
    async with process_server(argv, port, extra_env=env):
        yield f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def registry(tenant_id: str) -> AsyncIterator[str]:
    """GetMetaDestination for one tenant whose default destination is the demo pixel."""
    from trackai.provisioner.v1 import provisioner_service_pb2 as pb
    from trackai.provisioner.v1 import provisioner_service_pb2_grpc as pb_grpc
    from trackai_kit.grpc import AccessPolicy, local_dev_callers, rpc, start_grpc_server
    from trackai_kit.settings import GrpcSettings

    destination = pb.MetaDestination(pixel_id=PIXEL, access_token=TOKEN)
    service = pb.DESCRIPTOR.services_by_name["TenantRegistryService"]

    class Registry(pb_grpc.TenantRegistryServiceServicer):
        async def GetMetaDestination(
            self, request: pb.GetMetaDestinationRequest, context: Any
        ) -> pb.GetMetaDestinationResponse:
            return pb.GetMetaDestinationResponse(destination=destination)

    server = await start_grpc_server(
        GrpcSettings(port=0, callers=local_dev_callers()),
        # Only GetMetaDestination is served; the other RPCs answer UNIMPLEMENTED (base class).
        partial(pb_grpc.add_TenantRegistryServiceServicer_to_server, Registry()),  # type: ignore[abstract]
        [service.full_name],
        AccessPolicy.of({"dispatcher": [rpc(service, "GetMetaDestination")]}),
    )
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        await server.stop(0)


@dataclass
class Stage:
    """One benchmark's dispatcher: its database, queues and publisher; ``consumer()`` runs the
    consume process."""

    pool: asyncpg.Pool
    amqp: Any
    meta: httpx.AsyncClient
    tenant_id: str
    env: dict[str, str]

    @contextlib.asynccontextmanager
    async def consumer(self) -> AsyncIterator[None]:
        http_port = free_port()
        argv = [sys.executable, "-m", "trackai_dispatcher", "consume"]
        env = {**self.env, "DISPATCHER_HTTP_PORT": str(http_port)}
        async with process_server(argv, http_port, extra_env=env):
            yield

    def request(self, index: int, run: str) -> Any:
        from google.protobuf.json_format import ParseDict

        from trackai.matcher.v1 import events_pb2 as matcher_pb
        from trackai_sandbox.testing import sample_purchase

        now = int(time.time())
        event = sample_purchase(now, event_id=hashlib.sha256(f"{run}-{index}".encode()).hexdigest())
        event["custom_data"]["value"] = "129.90"
        request = matcher_pb.DispatchRequest(
            message_id=uuid.uuid4().hex, tenant_id=self.tenant_id, pixel_id=PIXEL
        )
        ParseDict(event, request.event)
        return request

    async def publish(self, request: Any) -> None:
        from trackai_dispatcher.adapters.broker import DISPATCH_TYPE
        from trackai_kit.topology import CAPI_DISPATCH

        await self.amqp.publish(
            CAPI_DISPATCH,
            request.SerializeToString(),
            message_id=request.message_id,
            message_type=DISPATCH_TYPE,
        )

    async def wait_sent(self, event_ids: list[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            sent = await self.pool.fetchval(
                "SELECT count(*) FROM dispatcher.dispatches"
                " WHERE event_id = ANY($1::bpchar[]) AND state = 'sent'",
                event_ids,
            )
            if sent == len(event_ids):
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"only part of {len(event_ids)} events were sent in {timeout_s} s")


@contextlib.asynccontextmanager
async def stage(ctx: BenchContext, **knobs: str) -> AsyncIterator[Stage]:
    from trackai_dispatcher.bootstrap import dispatch_topology
    from trackai_dispatcher.settings import Settings
    from trackai_kit.amqp import AmqpClient, declared_names, forget_prefix
    from trackai_kit.migrations import upgrade
    from trackai_kit.settings import AmqpSettings

    meta_url = await ctx.shared("dispatcher.meta", lambda: meta_fake(ctx))
    tenant_id = str(uuid.uuid4())
    prefix = f"bench.{secrets.token_hex(5)}."
    async with (
        temporary_database(ctx.settings.database_url) as database,
        registry(tenant_id) as registry_target,
        httpx.AsyncClient(base_url=meta_url, timeout=10) as meta,
    ):
        url = ctx.settings.database_url.rsplit("/", 1)[0] + f"/{database}"
        await asyncio.to_thread(upgrade, "dispatcher", url)
        amqp = AmqpClient(
            AmqpSettings(url=ctx.settings.amqp_url, prefix=prefix), connection_name="bench"
        )
        await amqp.connect()
        await amqp.declare(dispatch_topology(Settings()))
        env = {
            "TRACKAI_ENV": "test",
            "DATABASE_URL": url,
            "AMQP_URL": ctx.settings.amqp_url,
            "AMQP_PREFIX": prefix,
            "META_GRAPH_URL": meta_url,
            "PROVISIONER_GRPC_TARGET": registry_target,
            "LOG_LEVEL": "WARNING",
            **knobs,
        }
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        try:
            yield Stage(pool, amqp, meta, tenant_id, env)
        finally:
            await pool.close()
            await amqp.close()
            queues, _ = declared_names(prefix)
            connection = await aio_pika.connect(ctx.settings.amqp_url)
            try:
                channel = await connection.channel()
                for queue in sorted(queues):
                    await channel.queue_delete(queue)
            finally:
                await connection.close()
            forget_prefix(prefix)


async def reset_meta(meta: httpx.AsyncClient, latency_ms: int) -> None:
    (await meta.post("/_sandbox/reset", json={})).raise_for_status()
    if latency_ms:
        fault = {"kind": "latency_ms", "latency_ms": latency_ms, "count": None}
        (await meta.post("/_sandbox/faults", json=fault)).raise_for_status()


@benchmark(
    THROUGHPUT,
    metrics=[
        Metric("throughput", "events/s", ratio_to=Ref(THROUGHPUT, "bound")),
        Metric("whole_run", "events/s", ratio_to=Ref(THROUGHPUT, "bound")),
        Metric("avg_batch", "events"),
        Metric("bound", "events/s"),
    ],
)
async def throughput(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """Events delivered per second from a full queue, Meta answering in 300 ms (batch 200,
    4 workers); ratio to workers x batch / latency. ``throughput`` is the steady state (POSTs
    started once every slot had one, up to the last POST), ``whole_run`` the first POST to the
    last answer (start-up and the last, partly filled round included)."""
    knobs = {
        "DISPATCHER_BATCH_MAX": str(THROUGHPUT_BATCH),
        "DISPATCHER_CONCURRENCY": str(THROUGHPUT_WORKERS),
        "DISPATCHER_BATCH_DEADLINE_MS": "200",
        "META_TIMEOUT_S": "5",
    }
    events = ctx.scale(8000, 4000)
    bound = THROUGHPUT_WORKERS * THROUGHPUT_BATCH / (META_LATENCY_MS / 1000)
    async with stage(ctx, **knobs) as s:

        async def once() -> dict[str, float]:
            await reset_meta(s.meta, META_LATENCY_MS)
            run = secrets.token_hex(4)
            requests = [s.request(i, run) for i in range(events)]
            ids = [r.event.event_id for r in requests]
            semaphore = asyncio.Semaphore(64)

            async def send(request: Any) -> None:
                async with semaphore:
                    await s.publish(request)

            # The queue is filled first, so the publisher does not compete for the CPU with
            # the consumer; the clocks are the POSTs' own times.
            await asyncio.gather(*(send(r) for r in requests))
            async with s.consumer():
                await s.wait_sent(ids, timeout_s=120)
            posts = await s.pool.fetch(
                """
                SELECT a.started_at, a.finished_at, a.event_count
                FROM dispatcher.dispatch_attempts a
                WHERE a.id IN (SELECT attempt_id FROM dispatcher.dispatch_attempt_events
                               WHERE event_id = ANY($1::bpchar[]))
                ORDER BY a.started_at
                """,
                ids,
            )
            whole = (max(p["finished_at"] for p in posts) - posts[0]["started_at"]).total_seconds()
            # Steady state: the bound assumes every slot busy, which a run only is between the
            # moment each slot has started its first POST and the last POST.
            steady = posts[THROUGHPUT_WORKERS - 1 : -1]
            window = (posts[-1]["started_at"] - steady[0]["started_at"]).total_seconds()
            return {
                "throughput": sum(p["event_count"] for p in steady) / window,
                "whole_run": events / whole,
                "avg_batch": sum(p["event_count"] for p in posts) / len(posts),
                "bound": bound,
            }

        yield once


@benchmark(
    "dispatcher.latency_200eps",
    metrics=[
        Metric("p50", "ms", higher_is_better=False),
        Metric("p95", "ms", higher_is_better=False),
        Metric("p99", "ms", higher_is_better=False),
        Metric("avg_batch", "events"),
    ],
)
async def latency(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """Enqueue to Meta's answer at a steady 200 events/s (defaults: batch 1000, deadline 200 ms)."""
    seconds = ctx.seconds(5.0, 3.0)
    async with stage(ctx) as s, s.consumer():

        async def once() -> dict[str, float]:
            await reset_meta(s.meta, 0)
            run = secrets.token_hex(4)
            enqueued: dict[str, float] = {}
            total = int(STEADY_RATE * seconds)
            started = time.time()
            for index in range(total):
                # Paced by schedule, so a slow publish does not lower the offered rate.
                delay = started + index / STEADY_RATE - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                request = s.request(index, run)
                enqueued[request.event.event_id] = time.time()
                await s.publish(request)
            ids = list(enqueued)
            await s.wait_sent(ids, timeout_s=60)
            rows = await s.pool.fetch(
                """
                SELECT e.event_id, a.id, a.finished_at, a.event_count
                FROM dispatcher.dispatch_attempt_events e
                JOIN dispatcher.dispatch_attempts a ON a.id = e.attempt_id
                WHERE e.event_id = ANY($1::bpchar[]) AND a.outcome = 'sent'
                """,
                ids,
            )
            latencies = [
                (r["finished_at"].timestamp() - enqueued[r["event_id"]]) * 1000 for r in rows
            ]
            return {
                "p50": percentile(latencies, 50),
                "p95": percentile(latencies, 95),
                "p99": percentile(latencies, 99),
                "avg_batch": len(rows) / len({r["id"] for r in rows}),
            }

        yield once
