"""RabbitMQ baselines: persistent 1 KB publishes with publisher confirms to a quorum queue.

Measured with aio-pika directly (1 and 64 in flight), then through the kit's ``AmqpClient`` so the
kit's own cost (tracing span, header injection, timeout) shows as a ratio to the raw figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
import aio_pika.abc

from bench.context import BenchContext
from bench.registry import Metric, Ref, RunOnce, benchmark
from bench.stats import percentile

BODY = secrets.token_bytes(1024)
RAW_1 = "baseline.amqp.confirm_1"
RAW_64 = "baseline.amqp.confirm_64"
Publish = Callable[[bytes], Awaitable[None]]


def amqp_metrics(ratio_to: str | None = None) -> list[Metric]:
    def ref(metric: str) -> Ref | None:
        return Ref(ratio_to, metric) if ratio_to else None

    return [
        Metric("throughput", "msg/s", ratio_to=ref("throughput")),
        Metric("p50", "ms", higher_is_better=False, ratio_to=ref("p50")),
        Metric("p99", "ms", higher_is_better=False, ratio_to=ref("p99")),
    ]


@contextlib.asynccontextmanager
async def shared_connection(url: str) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    connection = await aio_pika.connect(url, client_properties={"connection_name": "bench"})
    try:
        yield connection
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def quorum_queue(ctx: BenchContext) -> AsyncIterator[tuple[aio_pika.abc.AbstractQueue, str]]:
    """A durable quorum queue ``bench.<random>``, deleted when the benchmark ends."""
    connection = await ctx.shared(
        "amqp.connection", lambda: shared_connection(ctx.settings.amqp_url)
    )
    channel = await connection.channel(publisher_confirms=False)
    name = f"bench.{secrets.token_hex(6)}"
    queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    try:
        yield queue, name
    finally:
        await queue.delete(if_unused=False, if_empty=False)
        await channel.close()


def publish_run(
    queue: aio_pika.abc.AbstractQueue, publish: Publish, *, seconds: float, in_flight: int
) -> RunOnce:
    """A run: empty the queue (untimed), publish with ``in_flight`` concurrent publishers until
    the deadline, check the queue holds every confirmed message."""

    async def once() -> dict[str, float]:
        await queue.purge()
        latencies: list[float] = []

        async def publisher(deadline: float) -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await publish(BODY)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(publisher(started + seconds) for _ in range(in_flight)))
        elapsed = time.perf_counter() - started
        declared = await queue.channel.declare_queue(queue.name, passive=True)
        stored = declared.declaration_result.message_count
        if stored != len(latencies):
            raise RuntimeError(f"{queue.name} holds {stored} messages, {len(latencies)} confirmed")
        return {
            "throughput": len(latencies) / elapsed,
            "p50": percentile(latencies, 50) * 1000,
            "p99": percentile(latencies, 99) * 1000,
        }

    return once


@contextlib.asynccontextmanager
async def raw_publisher(ctx: BenchContext, in_flight: int) -> AsyncIterator[RunOnce]:
    async with quorum_queue(ctx) as (queue, name):
        connection = await ctx.shared(
            "amqp.connection", lambda: shared_connection(ctx.settings.amqp_url)
        )
        channel = await connection.channel(publisher_confirms=True)
        exchange = channel.default_exchange

        async def publish(body: bytes) -> None:
            message = aio_pika.Message(
                body,
                message_id=uuid.uuid4().hex,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await exchange.publish(message, name, mandatory=True)

        try:
            yield publish_run(queue, publish, seconds=ctx.seconds(1.5, 0.7), in_flight=in_flight)
        finally:
            await channel.close()


@contextlib.asynccontextmanager
async def kit_publisher(ctx: BenchContext, in_flight: int) -> AsyncIterator[RunOnce]:
    # Imported here so a broken kit fails only these benchmarks, not the raw baselines.
    from trackai_kit.amqp import AmqpClient
    from trackai_kit.settings import AmqpSettings

    async with (
        quorum_queue(ctx) as (queue, name),
        AmqpClient(AmqpSettings(url=ctx.settings.amqp_url), connection_name="bench") as client,
    ):

        async def publish(body: bytes) -> None:
            await client.publish(name, body, message_id=uuid.uuid4().hex, message_type="bench")

        yield publish_run(queue, publish, seconds=ctx.seconds(1.5, 0.7), in_flight=in_flight)


@benchmark(RAW_1, metrics=amqp_metrics())
async def confirm_1(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """aio-pika, 1 KB persistent messages, quorum queue, confirms, 1 in flight."""
    async with raw_publisher(ctx, 1) as run:
        yield run


@benchmark(RAW_64, metrics=amqp_metrics())
async def confirm_64(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """aio-pika, 1 KB persistent messages, quorum queue, confirms, 64 in flight."""
    async with raw_publisher(ctx, 64) as run:
        yield run


@benchmark("baseline.amqp.kit_confirm_1", metrics=amqp_metrics(ratio_to=RAW_1))
async def kit_confirm_1(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """trackai_kit AmqpClient.publish, same messages and queue type, 1 in flight."""
    async with kit_publisher(ctx, 1) as run:
        yield run


@benchmark("baseline.amqp.kit_confirm_64", metrics=amqp_metrics(ratio_to=RAW_64))
async def kit_confirm_64(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """trackai_kit AmqpClient.publish, same messages and queue type, 64 in flight."""
    async with kit_publisher(ctx, 64) as run:
        yield run
