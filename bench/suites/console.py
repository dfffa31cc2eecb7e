"""Console live updates: one status published on ``trackai.status`` reaching every open
``/eventos/ao-vivo`` stream of a tenant, through the real ``python -m trackai_console serve``
process (its AMQP feed, the per-tenant hub, Starlette's streaming responses).

1,000 streams of one tenant (100 with ``--quick``) are held open on raw sockets; each run
publishes one status for that tenant and times, per stream, publish → the status's bytes read.
The ratio is to the same path with ONE stream (another tenant's, measured in the same run), so it
shows what the fan-out itself costs. The issue's target: p99 ≤ 1 s. A stream of the crowded
tenant that sees the other tenant's status counts as a leak and fails the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import aio_pika

from bench.context import BenchContext
from bench.registry import Metric, Ref, RunOnce, benchmark
from bench.servers import HOST, process_server
from bench.stats import percentile
from bench.suites.baseline_postgres import temporary_database
from bench.suites.ingestion import _database_url, _server_log
from trackai.common.v1 import events_pb2 as common_pb
from trackai_console.adapters.accounts_store import PostgresAccountStore
from trackai_console.adapters.passwords import Argon2Hasher
from trackai_console.domain.accounts import LoginLimits
from trackai_console.service_layer.accounts import Accounts
from trackai_kit import migrations
from trackai_kit.amqp import AmqpClient
from trackai_kit.postgres import create_pool
from trackai_kit.settings import AmqpSettings, PostgresSettings
from trackai_kit.topology import STATUS_EXCHANGE, status_topology
from trackai_testing.ports import free_port

FANOUT = "console.sse_fanout"
PASSWORD = "senha-do-benchmark-1"
#: Marker prefixes of the two tenants' statuses.
ALONE, CROWD = "alone", "crowd"
#: A run fails when a stream has not seen the status within this.
DEADLINE_S = 15.0


class Stream:
    """One open ``/eventos/ao-vivo`` response read from a raw socket (no client library cost)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.seen: dict[bytes, float] = {}
        self.wanted: set[bytes] = set()
        self.arrived = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.leaks: tuple[bytes, ...] = ()
        self.leaked = False

    @classmethod
    async def open(cls, port: int, cookie: str) -> Stream:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(
            (
                f"GET /eventos/ao-vivo HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                f"Cookie: trackai_session={cookie}\r\nAccept: text/event-stream\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        stream = cls(reader, writer)
        head = await asyncio.wait_for(reader.readuntil(b"event: ready"), 60)
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"the live stream answered {head[:80]!r}")
        stream.task = asyncio.create_task(stream._read())
        return stream

    async def _read(self) -> None:
        buffer = b""
        while chunk := await self.reader.read(65536):
            now = time.perf_counter()
            buffer = buffer[-200:] + chunk
            for marker in list(self.wanted):
                if marker in buffer:
                    self.seen[marker] = now
                    self.wanted.discard(marker)
                    self.arrived.set()
            for marker in self.leaks:
                if marker in buffer:
                    self.leaked = True

    def expect(self, marker: bytes) -> None:
        self.arrived.clear()
        self.wanted.add(marker)

    async def close(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def _session(db_url: str, tenant: uuid.UUID, email: str) -> str:
    pool = await create_pool(PostgresSettings(url=db_url), schema="console")
    try:
        accounts = Accounts(
            PostgresAccountStore(pool),
            Argon2Hasher(),
            session_ttl=timedelta(hours=2),
            link_ttl=timedelta(minutes=5),
            invite_ttl=timedelta(minutes=5),
            limits=LoginLimits(per_email=5, per_address=50),
        )
        await accounts.create_user(email, "seller", tenant, PASSWORD)
        return (await accounts.sign_in(email, PASSWORD, "127.0.0.1")).session_token
    finally:
        await pool.close()


async def _publish(amqp: AmqpClient, tenant: uuid.UUID, marker: bytes) -> float:
    update = common_pb.StatusUpdate(
        tenant_id=str(tenant),
        entity=common_pb.STATUS_ENTITY_DISPATCH,
        entity_id=marker.decode(),
        status="sent",
    )
    started = time.perf_counter()
    await amqp.publish(
        f"dispatch.{tenant}",
        update.SerializeToString(),
        exchange=STATUS_EXCHANGE,
        message_id=uuid.uuid4().hex,
        message_type="trackai.common.v1.StatusUpdate",
    )
    return started


async def _deliver(
    amqp: AmqpClient, tenant: uuid.UUID, streams: list[Stream], label: str
) -> list[float]:
    """Publish one status of ``tenant``; seconds until each stream read it."""
    marker = f"{label}-{secrets.token_hex(8)}".encode()
    for stream in streams:
        stream.expect(marker)
    started = await _publish(amqp, tenant, marker)
    await asyncio.wait_for(asyncio.gather(*(s.arrived.wait() for s in streams)), DEADLINE_S)
    return [s.seen[marker] - started for s in streams]


@benchmark(
    FANOUT,
    metrics=[
        Metric("p50", "ms", higher_is_better=False, ratio_to=Ref(FANOUT, "one_p50")),
        Metric("p99", "ms", higher_is_better=False, ratio_to=Ref(FANOUT, "one_p99")),
        Metric("max", "ms", higher_is_better=False),
        Metric("one_p50", "ms", higher_is_better=False),
        Metric("one_p99", "ms", higher_is_better=False),
        Metric("streams", "count"),
    ],
)
async def sse_fanout(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """One status to each of 1,000 open SSE streams of a tenant; ratio to one stream."""
    settings = ctx.settings
    database = await ctx.shared(
        "console.database", lambda: temporary_database(settings.database_url)
    )
    db_url = _database_url(settings.database_url, database)
    await asyncio.to_thread(migrations.upgrade, "console", db_url)
    crowded, alone = uuid.uuid4(), uuid.uuid4()
    crowd_cookie = await _session(db_url, crowded, f"crowd-{crowded.hex[:8]}@bench.example")
    alone_cookie = await _session(db_url, alone, f"alone-{alone.hex[:8]}@bench.example")
    prefix = f"bench.{secrets.token_hex(4)}."
    port = free_port()
    env = {
        "DATABASE_URL": db_url,
        "AMQP_URL": settings.amqp_url,
        "AMQP_PREFIX": prefix,
        "CONSOLE_HTTP_PORT": str(port),
        "CONSOLE_GRPC_PORT": str(free_port()),
        "TRACKAI_ENV": "test",
        "LOG_LEVEL": "WARNING",
        # No provisioner here: the EMQ history would only log that it is unreachable.
        "CONSOLE_EMQ_SNAPSHOT_S": "86400",
    }
    count = ctx.scale(1000, 100)
    argv = [sys.executable, "-m", "trackai_console", "serve"]
    async with (
        _server_log() as log,
        process_server(argv, port, extra_env=env, startup_timeout=60, stdout=log),
        AmqpClient(AmqpSettings(url=settings.amqp_url, prefix=prefix)) as amqp,
    ):
        await amqp.declare(status_topology())
        streams: list[Stream] = []
        try:
            one = await Stream.open(port, alone_cookie)
            streams.append(one)
            # The feed binds its queue after start-up: publish until the lone stream sees one.
            for _ in range(60):
                with contextlib.suppress(TimeoutError):
                    await _deliver(amqp, alone, [one], ALONE)
                    break
            for first in range(0, count, 100):
                streams.extend(
                    await asyncio.gather(
                        *(Stream.open(port, crowd_cookie) for _ in range(min(100, count - first)))
                    )
                )
            crowd = streams[1:]

            async def once() -> dict[str, float]:
                lone = [await _deliver(amqp, alone, [one], ALONE) for _ in range(20)]
                lone_ms = sorted(x[0] * 1000 for x in lone)
                fanned = sorted(x * 1000 for x in await _deliver(amqp, crowded, crowd, CROWD))
                if any(s.leaked for s in crowd):
                    raise AssertionError("a stream of one tenant saw another tenant's status")
                return {
                    "p50": percentile(fanned, 50),
                    "p99": percentile(fanned, 99),
                    "max": fanned[-1],
                    "one_p50": percentile(lone_ms, 50),
                    "one_p99": percentile(lone_ms, 99),
                    "streams": float(len(crowd)),
                }

            for stream in crowd:
                # The lone tenant's statuses: none may reach the crowded tenant's streams.
                stream.leaks = (ALONE.encode(),)
            yield once
        finally:
            await asyncio.gather(*(s.close() for s in streams))
            await _delete_exchange(settings.amqp_url, f"{prefix}{STATUS_EXCHANGE}")


async def _delete_exchange(url: str, name: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.exchange_delete(name)
    finally:
        await connection.close()
