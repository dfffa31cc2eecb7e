"""Does the matcher keep up with the ingress's real load? ``matcher.keeps_up``: the real
``serve`` and ``relay`` of ingestion loaded closed-loop with page views (a new visitor session
every four hits), while the real matcher ``consume`` process folds them into sessions from
``ingest-events``, all on this machine's two cores.

Figures: the hits answered per second during the load, as a ratio to the collect maximum of
``ingestion.collect_accept`` (same run, no consumer); the hits the matcher handled per second
during the load; the growth of the backlog (messages in ``ingest-events`` not yet handled) per
second of load; then, with the load stopped, how long the matcher takes to drain what is left
and its drain rate (the matcher's capacity when it has the cores to itself), as a ratio to the
collect maximum. The backlog stays bounded when the drain rate is at least the collect rate
(ratio >= 1): a backlog that grows during the load while the ingress holds three processes'
worth of CPU is the machine, not the matcher, and drains at that rate. Every hit answered is
checked to be handled once (one inbox row each) before the run counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator

import aio_pika
import asyncpg

from bench.context import BenchContext
from bench.http_load import run_load
from bench.registry import Metric, Ref, RunOnce, benchmark
from bench.servers import HOST, process_server
from bench.suites.baseline_http import CONNECTIONS
from bench.suites.ingestion import (
    COLLECT,
    _queues,
    _server_log,
    _tenant_registry,
    collect_requests,
    migrated_database,
    serve_env,
)
from trackai_kit import migrations
from trackai_kit.topology import INGEST_EVENTS
from trackai_testing.ports import free_port

KEEPS_UP = "matcher.keeps_up"
HITS_PER_SESSION = 4
DRAIN_LIMIT_S = 120.0
MIN_BACKLOG = 200


async def _handled(conn: asyncpg.Connection) -> int:
    """Messages the matcher has handled (each claims one inbox row)."""
    return int(await conn.fetchval("SELECT count(*) FROM matcher.inbox"))


async def _depth(channel: aio_pika.abc.AbstractChannel, queue: str) -> int:
    declared = await channel.declare_queue(queue, passive=True)
    return declared.declaration_result.message_count or 0


@benchmark(
    KEEPS_UP,
    metrics=[
        Metric("collect_rate", "hits/s", ratio_to=Ref(COLLECT, "throughput")),
        Metric("matcher_rate", "hits/s"),
        Metric("backlog_growth", "hits/s", higher_is_better=False),
        Metric("drain_s", "s", higher_is_better=False),
        Metric("drain_rate", "hits/s", ratio_to=Ref(COLLECT, "throughput")),
    ],
)
async def keeps_up(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """Page views at the collect maximum through serve, relay and the matcher's consumer."""
    settings = ctx.settings
    db_url = await migrated_database(ctx, "pipeline.database")
    await asyncio.to_thread(migrations.upgrade, "matcher", db_url)
    tenant_id = str(uuid.uuid4())
    prefix = f"bench.{secrets.token_hex(6)}."
    port, relay_port, matcher_port = free_port(), free_port(), free_port()
    env = serve_env(db_url, settings.amqp_url, prefix, port)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(_queues(settings.amqp_url, prefix))
        # The collect route reads the tenant's allowed origins from the registry; the matcher
        # never asks it about page views.
        registry_port = await stack.enter_async_context(_tenant_registry(tenant_id))
        env["PROVISIONER_GRPC_TARGET"] = f"127.0.0.1:{registry_port}"
        for argv, extra in (
            (["serve"], {}),
            (["relay"], {"INGESTION_HTTP_PORT": str(relay_port)}),
        ):
            log = await stack.enter_async_context(_server_log())
            await stack.enter_async_context(
                process_server(
                    [sys.executable, "-m", "trackai_ingestion", *argv],
                    relay_port if argv == ["relay"] else port,
                    extra_env={**env, **extra},
                    stdout=log,
                )
            )
        matcher_log = await stack.enter_async_context(_server_log())
        await stack.enter_async_context(
            process_server(
                [sys.executable, "-m", "trackai_matcher", "consume"],
                matcher_port,
                extra_env={
                    **env,
                    "MATCHER_HTTP_PORT": str(matcher_port),
                    "MATCHER_GRPC_PORT": str(free_port()),
                },
                stdout=matcher_log,
            )
        )
        conn = await asyncpg.connect(db_url)
        stack.push_async_callback(conn.close)
        broker = await aio_pika.connect(settings.amqp_url)
        stack.push_async_callback(broker.close)
        channel = await broker.channel()
        queue = f"{prefix}{INGEST_EVENTS}"
        requests = collect_requests(port, tenant_id, HITS_PER_SESSION)
        seconds = ctx.seconds(4.0, 2.0)
        answered = 0

        async def once() -> dict[str, float]:
            nonlocal answered
            handled_before = await _handled(conn)
            load = await run_load(
                HOST,
                port,
                request=requests,
                connections=CONNECTIONS,
                seconds=seconds,
                expected_status=204,
            )
            if load.errors:
                raise RuntimeError(f"{load.errors} hits were not answered 204")
            handled_during = await _handled(conn) - handled_before
            answered += load.requests
            # What is left: answered but not yet handled (in the outbox, the queue, or a batch).
            left = answered - (handled_before + handled_during)
            started = time.monotonic()
            while (handled := await _handled(conn)) < answered:
                if time.monotonic() - started > DRAIN_LIMIT_S:
                    raise RuntimeError(f"{answered} answered, {handled} handled after the limit")
                await asyncio.sleep(0.05)
            drain_s = time.monotonic() - started
            if handled != answered or await _depth(channel, queue):
                raise RuntimeError(f"{answered} answered, {handled} handled")
            return {
                "collect_rate": load.rate,
                "matcher_rate": handled_during / load.seconds,
                "backlog_growth": max(0.0, left) / load.seconds,
                "drain_s": drain_s,
                # A backlog too small to time: the matcher kept up at the load's own rate.
                "drain_rate": left / drain_s
                if left >= MIN_BACKLOG
                else handled_during / load.seconds,
            }

        yield once
