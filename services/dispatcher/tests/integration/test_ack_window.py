"""The consumer's ack window against a real broker: coalesced multiple acks never ack a delivery
that is not settled, stragglers are acked on their own, and no tag is acked twice (which the
broker answers by closing the channel)."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import aio_pika.abc
import pytest

from trackai_dispatcher.adapters.broker import AckWindow

pytestmark = pytest.mark.integration


async def test_acks_coalesce_and_never_cover_an_unsettled_delivery(amqp_url: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"ack-window-{uuid.uuid4().hex}", auto_delete=True)
        for i in range(6):
            await channel.default_exchange.publish(aio_pika.Message(str(i).encode()), queue.name)
        received: list[aio_pika.abc.AbstractIncomingMessage] = []
        for _ in range(6):
            message = await queue.get(fail=True, timeout=5)
            assert message is not None
            received.append(message)
        tags = [m.delivery_tag for m in received]
        assert tags == [1, 2, 3, 4, 5, 6]
        window = AckWindow(received[0].channel, coalesce_s=0.05)

        await window.ack([3, 4])  # behind 1 and 2: held back, then acked on their own
        await asyncio.sleep(0.2)
        await window.ack([1])  # one multiple ack, up to 1
        await window.ack([2])  # up to 2; 3 and 4 were acked already and are skipped
        await received[4].reject(requeue=False)
        window.handled(5)
        # 6 stays unsettled: nothing may cover it.

        # A round trip on the channel: a double or unknown ack would have closed it by now.
        await channel.declare_queue(queue.name, passive=True)
        assert not channel.is_closed
        await channel.close()
        check = await connection.channel()
        left = await check.declare_queue(queue.name, passive=True)
        assert left.declaration_result.message_count == 1
        returned = await left.get(fail=True, timeout=5)
        assert returned is not None and returned.body == b"5"
        await returned.ack()
    finally:
        await connection.close()
