"""Without an exporter (a fresh process: the test session has one) publishing makes no producer or
relay span, yet the trace context still reaches the consumer: the publisher's current span, or,
for a message relayed from the outbox, the traceparent stored with it when it was enqueued."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.integration

STORED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from opentelemetry import trace
    from trackai_kit.amqp import AmqpClient
    from trackai_kit.outbox import OutboxRelay, enqueue, outbox_ddl
    from trackai_kit.postgres import create_pool
    from trackai_kit.settings import AmqpSettings, PostgresSettings, TelemetrySettings
    from trackai_kit.telemetry import configure_telemetry, spans_exported
    from trackai_kit.topology import INGEST_EVENTS, ingestion_topology

    database_url, amqp_url, prefix, stored = sys.argv[1:5]
    configure_telemetry("svc", TelemetrySettings())

    async def main():
        received = {}
        done = asyncio.Event()

        async def handler(message):
            received[message.message_id] = {
                "traceparent": message.headers.get("traceparent"),
                "consumer_trace_id": format(
                    trace.get_current_span().get_span_context().trace_id, "032x"
                ),
            }
            if len(received) == 2:
                done.set()

        pool = await create_pool(PostgresSettings(url=database_url), schema="unexported")
        async with AmqpClient(AmqpSettings(url=amqp_url, prefix=prefix)) as amqp:
            await amqp.declare(ingestion_topology())
            async with pool.acquire() as conn:
                await conn.execute("CREATE SCHEMA unexported")
                await conn.execute(outbox_ddl("unexported"))
                # Enqueued earlier by a request of trace `stored`: the relay has no span of its own.
                await enqueue(
                    conn, schema="unexported", routing_key=INGEST_EVENTS, message_id="relayed",
                    message_type="t", body=b"r", headers={"traceparent": stored},
                )
            await OutboxRelay(pool, amqp, schema="unexported").relay_batch()
            with trace.get_tracer("svc").start_as_current_span("request") as span:
                direct_trace_id = format(span.get_span_context().trace_id, "032x")
                recording = span.is_recording()
                await amqp.publish(INGEST_EVENTS, b"d", message_id="direct", message_type="t")
            consumer = await amqp.consume(INGEST_EVENTS, handler)
            await asyncio.wait_for(done.wait(), 10)
            await consumer.cancel()
        await pool.close()
        print(json.dumps({
            "spans_exported": spans_exported(),
            "recording": recording,
            "direct_trace_id": direct_trace_id,
            "received": received,
        }))

    asyncio.run(main())
    """
)


def test_unexported_publishes_carry_the_trace_context(
    empty_database_url: str, amqp_url: str, amqp_prefix: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY", "OTEL"))}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, empty_database_url, amqp_url, amqp_prefix, STORED],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["spans_exported"] is False
    assert result["recording"] is False
    relayed, direct = result["received"]["relayed"], result["received"]["direct"]
    # The relayed message arrives with the traceparent stored at enqueue time, unchanged.
    assert relayed["traceparent"] == STORED
    assert relayed["consumer_trace_id"] == STORED.split("-")[1]
    # A direct publish carries the publisher's current (non-recording) span.
    assert direct["traceparent"].split("-")[1] == result["direct_trace_id"]
    assert direct["consumer_trace_id"] == result["direct_trace_id"]
