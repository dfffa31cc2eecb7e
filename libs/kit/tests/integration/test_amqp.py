"""Confirmed publishing, ack-after-handler, dead-lettering and trace propagation on real RabbitMQ."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aio_pika
import pytest
import pytest_asyncio
from opentelemetry import trace

from trackai_kit.amqp import (
    FIRST_FAILURE_HEADER,
    RETRIES_HEADER,
    AmqpClient,
    IncomingMessage,
    Poison,
    PublishFailed,
    RetryLater,
    RetryPolicy,
)
from trackai_kit.settings import AmqpSettings
from trackai_kit.topology import (
    CAPI_DISPATCH,
    INGEST_EVENTS,
    STATUS_EXCHANGE,
    QueueSpec,
    Topology,
    delay_queues,
    dispatcher_topology,
    ingestion_topology,
    status_topology,
)

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(loop_scope="session")
async def amqp(amqp_url: str, amqp_prefix: str) -> AsyncIterator[AmqpClient]:
    async with AmqpClient(AmqpSettings(url=amqp_url, prefix=amqp_prefix)) as client:
        await client.declare(ingestion_topology())
        yield client


async def _get(
    client: AmqpClient, queue: str, timeout_s: float = 3.0
) -> aio_pika.abc.AbstractIncomingMessage:
    """Poll ``queue`` with basic.get until a message arrives (acknowledged on return)."""
    connection = await aio_pika.connect(client._settings.url)
    try:
        channel = await connection.channel()
        amqp_queue = await channel.get_queue(client.name(queue), ensure=False)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = await amqp_queue.get(fail=False)
            if message is not None:
                await message.ack()
                return message
            await asyncio.sleep(0.05)
        raise AssertionError(f"no message on {queue} within {timeout_s}s")
    finally:
        await connection.close()


async def _depth(client: AmqpClient, queue: str) -> int:
    connection = await aio_pika.connect(client._settings.url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(client.name(queue), passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def test_declare_is_idempotent_and_creates_quorum_queues(amqp: AmqpClient) -> None:
    await amqp.declare(ingestion_topology())  # same arguments: no PRECONDITION_FAILED
    connection = await aio_pika.connect(amqp._settings.url)
    try:
        channel = await connection.channel()
        # Redeclaring as a classic queue fails only if the broker holds it as a quorum queue.
        with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
            await channel.declare_queue(amqp.name(INGEST_EVENTS), durable=True)
    finally:
        await connection.close()
    assert await _depth(amqp, "ingest-events.dlq") == 0


async def test_consumer_acks_only_after_handler_returns(amqp: AmqpClient) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    seen: list[bytes] = []

    async def handler(message: IncomingMessage) -> None:
        started.set()
        await release.wait()
        seen.append(message.body)

    await amqp.publish(INGEST_EVENTS, b"m1", message_id="m1", message_type="test.Event")
    consumer = await amqp.consume(INGEST_EVENTS, handler, prefetch=1)
    try:
        await asyncio.wait_for(started.wait(), 3)
        # While the handler runs the message is unacknowledged: cancelling the consumer now would
        # return it to the queue. Let the handler finish and check nothing is left.
        release.set()
        for _ in range(60):
            if seen and await _depth(amqp, INGEST_EVENTS) == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        await consumer.cancel()
    assert seen == [b"m1"]
    assert await _depth(amqp, INGEST_EVENTS) == 0
    assert await _depth(amqp, "ingest-events.dlq") == 0


async def test_unfinished_handler_leaves_message_for_redelivery(amqp: AmqpClient) -> None:
    started = asyncio.Event()

    async def handler(message: IncomingMessage) -> None:
        started.set()
        await asyncio.sleep(30)  # a crash mid-handler, simulated by cancelling the consumer

    await amqp.publish(INGEST_EVENTS, b"m2", message_id="m2", message_type="test.Event")
    consumer = await amqp.consume(INGEST_EVENTS, handler, prefetch=1)
    await asyncio.wait_for(started.wait(), 3)
    await consumer.cancel()
    message = await _get(amqp, INGEST_EVENTS)
    assert message.message_id == "m2"
    assert message.redelivered


async def test_poison_dead_letters_and_other_failures_retry_through_the_delay_queue(
    amqp: AmqpClient,
) -> None:
    await amqp.declare(delay_queues(INGEST_EVENTS, (300,)))
    attempts: dict[str, int] = {}
    retried: list[IncomingMessage] = []
    done = asyncio.Event()

    async def handler(message: IncomingMessage) -> None:
        key = message.message_id or ""
        attempts[key] = attempts.get(key, 0) + 1
        if key == "poison":
            raise Poison("cannot decode")
        if key == "flaky" and attempts[key] == 1:
            raise RuntimeError("database restarting")
        if key == "flaky":
            retried.append(message)
        done.set()

    await amqp.publish(INGEST_EVENTS, b"x", message_id="poison", message_type="test.Event")
    await amqp.publish(INGEST_EVENTS, b"y", message_id="flaky", message_type="test.Event")
    consumer = await amqp.consume(
        INGEST_EVENTS, handler, prefetch=4, retry=RetryPolicy(delays_ms=(300,))
    )
    try:
        await asyncio.wait_for(done.wait(), 5)
        dead = await _get(amqp, "ingest-events.dlq")
    finally:
        await consumer.cancel()
    assert dead.message_id == "poison"
    assert dead.body == b"x"
    assert dead.headers["x-death"][0]["reason"] == "rejected"  # type: ignore[index]
    assert attempts == {"poison": 1, "flaky": 2}
    (again,) = retried
    # A copy through the delay queue (the original acked), not a requeue of the original: the
    # quorum queue's delivery count, which dead-letters at its limit, never grows.
    assert not again.redelivered
    assert again.body == b"y" and again.type == "test.Event"
    assert again.headers[RETRIES_HEADER] == 1
    assert again.headers["x-death"][0]["queue"] == amqp.name("ingest-events.retry.300")  # type: ignore[index]
    assert await _depth(amqp, INGEST_EVENTS) == 0


async def test_retry_later_comes_back_through_the_delay_queue_counted(amqp: AmqpClient) -> None:
    """A handler waiting for another message defers this one: a counted copy through the delay
    queue (the handler reads the count to bound its waiting), never the DLQ."""
    await amqp.declare(delay_queues(INGEST_EVENTS, (300,)))
    seen: list[int] = []
    done = asyncio.Event()

    async def handler(message: IncomingMessage) -> None:
        retries = int((message.headers or {}).get(RETRIES_HEADER, 0))  # type: ignore[arg-type]
        seen.append(retries)
        if retries < 2:
            raise RetryLater("waiting for the session's hit")
        done.set()

    await amqp.publish(INGEST_EVENTS, b"w", message_id="early", message_type="test.Event")
    consumer = await amqp.consume(INGEST_EVENTS, handler, retry=RetryPolicy(delays_ms=(300,)))
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        await consumer.cancel()
    assert seen == [0, 1, 2]
    assert await _depth(amqp, "ingest-events.dlq") == 0
    assert await _depth(amqp, INGEST_EVENTS) == 0


async def test_message_failing_past_its_retry_window_is_dead_lettered(amqp: AmqpClient) -> None:
    await amqp.declare(delay_queues(INGEST_EVENTS, (300,)))
    calls = 0

    async def handler(message: IncomingMessage) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("still broken")

    long_ago = int(time.time()) - 3600
    await amqp.publish(
        INGEST_EVENTS,
        b"z",
        message_id="old",
        message_type="test.Event",
        headers={RETRIES_HEADER: 7, FIRST_FAILURE_HEADER: long_ago},
    )
    consumer = await amqp.consume(
        INGEST_EVENTS, handler, retry=RetryPolicy(delays_ms=(300,), give_up_after_s=60)
    )
    try:
        dead = await _get(amqp, "ingest-events.dlq")
    finally:
        await consumer.cancel()
    assert dead.message_id == "old" and calls == 1
    assert await _depth(amqp, "ingest-events.retry.300") == 0


async def test_unroutable_publish_raises(amqp: AmqpClient) -> None:
    with pytest.raises(PublishFailed):
        await amqp.publish("no-such-queue", b"x", message_id="u1", message_type="test.Event")
    # the publishing channel survives a returned message
    await amqp.publish(INGEST_EVENTS, b"ok", message_id="u2", message_type="test.Event")
    assert (await _get(amqp, INGEST_EVENTS)).message_id == "u2"


async def test_publish_to_unreachable_broker_raises_quickly() -> None:
    client = AmqpClient(AmqpSettings(url="amqp://guest:guest@127.0.0.1:9/", connect_timeout_s=1))
    started = time.monotonic()
    with pytest.raises((PublishFailed, OSError, ConnectionError)):
        await client.publish(INGEST_EVENTS, b"x", message_id="m", message_type="t")
    with pytest.raises(Exception):  # noqa: B017 - any connection error is the expected outcome
        await client.ping()
    assert time.monotonic() - started < 5
    await client.close()


async def test_trace_context_travels_in_headers(amqp: AmqpClient) -> None:
    received: asyncio.Future[tuple[int, dict[str, object]]] = (
        asyncio.get_running_loop().create_future()
    )

    async def handler(message: IncomingMessage) -> None:
        ctx = trace.get_current_span().get_span_context()
        received.set_result((ctx.trace_id, dict(message.headers)))

    with trace.get_tracer("test").start_as_current_span("request") as span:
        await amqp.publish(
            INGEST_EVENTS,
            b"t",
            message_id="t1",
            message_type="test.Event",
            headers={"tenant": "acme"},
        )
        trace_id = span.get_span_context().trace_id
    consumer = await amqp.consume(INGEST_EVENTS, handler)
    try:
        consumer_trace_id, headers = await asyncio.wait_for(received, 3)
    finally:
        await consumer.cancel()
    assert consumer_trace_id == trace_id
    assert headers["tenant"] == "acme"
    assert str(headers["traceparent"]).split("-")[1] == format(trace_id, "032x")


async def test_delay_queue_returns_message_to_work_queue(amqp_url: str, amqp_prefix: str) -> None:
    fast = Topology(
        queues=(
            QueueSpec(CAPI_DISPATCH),
            QueueSpec("capi-dispatch.retry.300", message_ttl_ms=300, dead_letter_to=CAPI_DISPATCH),
        )
    )
    async with AmqpClient(AmqpSettings(url=amqp_url, prefix=amqp_prefix)) as client:
        await client.declare(fast)
        started = time.monotonic()
        await client.publish(
            "capi-dispatch.retry.300", b"r", message_id="r1", message_type="test.Event"
        )
        message = await _get(client, CAPI_DISPATCH, timeout_s=5)
        assert message.message_id == "r1"
        assert time.monotonic() - started >= 0.25
        assert message.headers["x-death"][0]["reason"] == "expired"  # type: ignore[index]


async def test_full_dispatcher_and_status_topologies_declare(
    amqp_url: str, amqp_prefix: str
) -> None:
    async with AmqpClient(AmqpSettings(url=amqp_url, prefix=amqp_prefix)) as client:
        await client.declare(dispatcher_topology())
        await client.declare(
            Topology(
                queues=(QueueSpec("status-reader", bindings=((STATUS_EXCHANGE, "tenant.#"),)),)
            )
        )
        await client.publish(
            "tenant.t1.event",
            b"s",
            exchange=STATUS_EXCHANGE,
            message_id="s1",
            message_type="test.Status",
            content_type="application/json",
        )
        assert (await _get(client, "status-reader")).message_id == "s1"
        # a topic publish with no matching binding is not an error
        await client.publish(
            "other", b"s", exchange=STATUS_EXCHANGE, message_id="s2", message_type="t"
        )
        assert status_topology().exchanges[0].name == STATUS_EXCHANGE
