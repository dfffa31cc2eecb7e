"""A batch that fails (database restarting, broker hiccup) is retried through a delay queue with an
ack, on the real broker: no requeue, so the quorum queue's delivery count (which dead-letters at
its limit) never grows, and no hot loop while the fault lasts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import aio_pika
import aio_pika.abc
import pytest

from trackai.matcher.v1 import events_pb2 as matcher_pb
from trackai_dispatcher.adapters.broker import DispatchConsumer, Receipt, destination_of
from trackai_dispatcher.adapters.wire import conversion
from trackai_dispatcher.domain.model import Destination
from trackai_dispatcher.entrypoints.consumer import settler
from trackai_dispatcher.service_layer.batch import Disposition
from trackai_dispatcher.service_layer.batching import Batcher, Pending
from trackai_dispatcher.service_layer.delivery import Dispatcher
from trackai_dispatcher.service_layer.ports import Delivery
from trackai_kit.amqp import RETRIES_HEADER, AmqpClient, RetryPolicy

from .conftest import FAST_LADDER, Env, Registry, dispatch_request, publish, wait_for

pytestmark = pytest.mark.integration


class FailingOnce:
    """Stands in for the Dispatcher: its first batch fails as a database outage would."""

    def __init__(self) -> None:
        self.calls = 0

    async def dispatch(
        self,
        destination: Destination,
        deliveries: Sequence[Delivery],
        stopping: Callable[[], bool] = lambda: False,
    ) -> list[Disposition]:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("connection was closed in the middle of operation")
        return [Disposition.ACK] * len(deliveries)

    async def flush_notifications(self) -> None:
        return None


async def test_a_failed_batch_is_retried_through_a_delay_queue_not_requeued(
    broker: AmqpClient, env: Env, registry: Registry
) -> None:
    seen: list[aio_pika.abc.AbstractIncomingMessage] = []
    dispatcher = FailingOnce()

    def on_delivery(request: matcher_pb.DispatchRequest, copy: int, receipt: Receipt) -> None:
        seen.append(receipt.message)
        delivery = Delivery(conversion(request), copy, source=request)
        batcher.add(destination_of(request), Pending(delivery, receipt))

    ladder = tuple(int(ms) for ms in FAST_LADDER.split(","))
    consumer = DispatchConsumer(
        broker, env.amqp_url, 10, on_delivery, retry=RetryPolicy(delays_ms=ladder)
    )
    batcher = Batcher(
        cast(Dispatcher, dispatcher),
        settler(consumer),
        batch_max=1,
        deadline_s=0.01,
        workers=1,
    )
    await consumer.start()
    try:
        await publish(broker, dispatch_request(registry.servicer.add_tenant(), "flaky-batch"))

        async def handled_twice() -> bool:
            return dispatcher.calls == 2 and batcher.idle

        await wait_for(handled_twice, what="the retried batch")
    finally:
        await consumer.stop()
        await batcher.drain(1.0)
        await consumer.close()
    first, again = seen
    assert not first.redelivered
    # A new copy that waited in the first delay queue, not the original requeued.
    assert not again.redelivered
    assert again.headers[RETRIES_HEADER] == 1
    death = again.headers["x-death"][0]  # type: ignore[index]
    assert death["queue"] == broker.name(f"capi-dispatch.retry.{ladder[0]}")  # type: ignore[index]
    connection = await aio_pika.connect(env.amqp_url)
    try:
        channel = await connection.channel()
        for name in ("capi-dispatch", "capi-dispatch.dlq"):
            queue = await channel.declare_queue(broker.name(name), passive=True)
            assert queue.declaration_result.message_count == 0, name
    finally:
        await connection.close()


async def test_acks_settled_just_before_close_reach_the_broker(
    broker: AmqpClient, env: Env, registry: Registry
) -> None:
    """Acks settled right before ``close()`` reach the broker and stay applied: only the delivery
    never settled comes back. (Acks go out without waiting, and a quorum queue may ignore acks
    that arrive just before their channel closes, rabbitmq-server#10327; on the old ``close()``
    this found 5 to 7 messages back instead of 1.)

    The first delivery is never settled (as one taken while the consumer was being cancelled), so
    the acks behind it wait in the window and ``close()`` itself sends them, one by one."""
    tenant = registry.servicer.add_tenant()
    received: list[Receipt] = []

    def on_delivery(request: matcher_pb.DispatchRequest, copy: int, receipt: Receipt) -> None:
        received.append(receipt)

    consumer = DispatchConsumer(
        broker, env.amqp_url, 100, on_delivery, retry=RetryPolicy(delays_ms=(1000,))
    )
    for round_ in range(3):
        await publish(broker, *(dispatch_request(tenant, f"close-{round_}-{i}") for i in range(40)))
        received.clear()
        await consumer.start()

        async def all_received() -> bool:
            return len(received) == 40

        await wait_for(all_received, what="40 deliveries")
        await consumer.stop()
        unsettled, *rest = sorted(received, key=lambda r: r.tag)
        await consumer.settle(rest, [])
        await consumer.close()
        connection = await aio_pika.connect(env.amqp_url)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(broker.name("capi-dispatch"), passive=True)
            assert queue.declaration_result.message_count == 1, f"round {round_}: acks lost"
            left = await queue.get(fail=True, timeout=5)
            assert left is not None and left.message_id == unsettled.message.message_id
            await left.ack()
        finally:
            await connection.close()
