"""A consumer survives a real broker restart (issue 14, scenario 5, found by the reliability
suite): RabbitMQ's clean shutdown closes connections with CONNECTION_FORCED, and aio-pika's robust
channel then reopened without its consumer, so the process looked healthy and consumed nothing.
A private broker node is stopped and started again (the shared one serves other tests)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from trackai_kit.amqp import AmqpClient, IncomingMessage, PublishFailed
from trackai_kit.settings import AmqpSettings
from trackai_kit.topology import QueueSpec, Topology
from trackai_testing.servers import PrivateRabbit, private_servers_available

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest_asyncio.fixture(loop_scope="session")
async def broker(tmp_path: Path) -> AsyncIterator[PrivateRabbit]:
    if problem := private_servers_available():
        pytest.fail(problem)
    node = PrivateRabbit(tmp_path / "rabbit")
    await asyncio.to_thread(node.start)
    try:
        yield node
    finally:
        await asyncio.to_thread(node.close)


async def _publish_until_accepted(client: AmqpClient, message_id: str) -> None:
    """The publisher reconnects on its own; until it has, a publish fails (and is retried)."""
    for _ in range(60):
        try:
            await client.publish("work", b"x", message_id=message_id, message_type="t")
            return
        except PublishFailed:
            await asyncio.sleep(1)
    raise AssertionError("the publisher never reconnected")


@pytest.mark.timeout(400)
async def test_a_consumer_consumes_again_after_the_broker_restarts(broker: PrivateRabbit) -> None:
    received: asyncio.Queue[str] = asyncio.Queue()

    async def handler(message: IncomingMessage) -> None:
        await received.put(message.message_id or "")

    settings = AmqpSettings(url=broker.url, prefix="restart.")
    async with AmqpClient(settings) as publisher, AmqpClient(settings) as consumer:
        await publisher.declare(Topology(queues=(QueueSpec("work"),)))
        handle = await consumer.consume("work", handler)
        await publisher.publish("work", b"x", message_id="before", message_type="t")
        assert await asyncio.wait_for(received.get(), 30) == "before"

        await asyncio.to_thread(broker.stop)
        await asyncio.to_thread(broker.start)
        await _publish_until_accepted(publisher, "after")
        # On the old code this waited forever: the message sat in the queue, nobody consuming.
        assert await asyncio.wait_for(received.get(), 90) == "after"
        await handle.cancel()
