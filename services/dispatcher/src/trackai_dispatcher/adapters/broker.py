"""RabbitMQ side of the dispatcher: the ``capi-dispatch`` consumer (deliveries held unacked while
they are batched), copies to the retry delay queues, replays, and status updates.

The consumer has its own connection: the broker throttles a publishing connection under memory
pressure, and that must not stall the acks that would relieve it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence

import aio_pika
import aio_pika.abc

from trackai.common.v1 import events_pb2 as common_pb
from trackai.matcher.v1 import events_pb2 as matcher_pb
from trackai_dispatcher.domain.model import Destination
from trackai_kit.amqp import AmqpClient
from trackai_kit.identity import is_event_id
from trackai_kit.logging import get_logger
from trackai_kit.topology import CAPI_DISPATCH, STATUS_EXCHANGE, retry_queue_name

log = get_logger(__name__)

DISPATCH_TYPE = matcher_pb.DispatchRequest.DESCRIPTOR.full_name
STATUS_TYPE = common_pb.StatusUpdate.DESCRIPTOR.full_name
#: Header carrying the number of POSTs recorded for the event when this copy was published.
COPY_HEADER = "x-trackai-attempt"


class Malformed(ValueError):
    """A message that can never be delivered (not a DispatchRequest, or no usable routing)."""


def parse(message: aio_pika.abc.AbstractIncomingMessage) -> tuple[matcher_pb.DispatchRequest, int]:
    if message.type and message.type != DISPATCH_TYPE:
        raise Malformed(f"unexpected message type {message.type!r}")
    request = matcher_pb.DispatchRequest()
    try:
        request.ParseFromString(message.body)
    except Exception as exc:
        raise Malformed(f"not a DispatchRequest: {exc}") from exc
    if not is_event_id(request.event.event_id):
        raise Malformed("event.event_id is not a Track AI event id (64 lowercase hex)")
    try:
        uuid.UUID(request.tenant_id)
    except ValueError:
        raise Malformed("tenant_id is not a UUID") from None
    if not request.pixel_id.isdigit():
        raise Malformed("pixel_id is not numeric")
    copy = (message.headers or {}).get(COPY_HEADER, 0)
    return request, int(copy) if isinstance(copy, int | str) and str(copy).isdigit() else 0


def destination_of(request: matcher_pb.DispatchRequest) -> Destination:
    return Destination(str(uuid.UUID(request.tenant_id)), request.pixel_id)


OnDelivery = Callable[[matcher_pb.DispatchRequest, int, aio_pika.abc.AbstractIncomingMessage], None]


class DispatchConsumer:
    """Consumes ``capi-dispatch`` with manual acks; ``stop()`` cancels delivery but keeps the
    channel open, so held messages can still be acked or handed back before ``close()``."""

    def __init__(self, amqp: AmqpClient, url: str, prefetch: int, on_delivery: OnDelivery) -> None:
        self._queue_name = amqp.name(CAPI_DISPATCH)
        self._url = url
        self._prefetch = prefetch
        self._on_delivery = on_delivery
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._tag: str | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self._url, client_properties={"connection_name": "dispatcher-consumer"}
        )
        channel = await self._connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=self._prefetch)
        self._queue = await channel.get_queue(self._queue_name, ensure=False)
        self._tag = await self._queue.consume(self._receive)

    async def _receive(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            request, copy = parse(message)
        except Malformed as exc:
            log.error(
                "undeliverable message; dead-lettering it to the queue's DLQ",
                message_id=message.message_id,
                reason=str(exc),
            )
            await settle(message.reject(requeue=False))
            return
        try:
            self._on_delivery(request, copy, message)
        except Exception:
            log.exception(
                "could not take a delivery; handing it back", message_id=message.message_id
            )
            await settle(message.nack(requeue=True))

    async def stop(self) -> None:
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except Exception:
                log.warning("could not cancel the consumer", exc_info=True)
            self._tag = None

    async def close(self) -> None:
        if self._connection is not None and not self._connection.is_closed:
            await self._connection.close()
        self._connection = None


async def settle(action: Awaitable[None]) -> None:
    # A channel that closed meanwhile makes the broker redeliver; the stale rule absorbs that.
    try:
        await action
    except Exception:
        log.warning("could not settle a message", exc_info=True)


class DispatchPublisher:
    """Publishes with confirms through the kit client (the service layer's Publisher port)."""

    def __init__(self, amqp: AmqpClient) -> None:
        self._amqp = amqp

    async def delay(self, request: matcher_pb.DispatchRequest, copy: int, delay_ms: int) -> None:
        await self._publish(retry_queue_name(CAPI_DISPATCH, delay_ms), request, copy)

    async def replay(self, request: matcher_pb.DispatchRequest, copy: int) -> None:
        await self._publish(CAPI_DISPATCH, request, copy)

    async def _publish(self, queue: str, request: matcher_pb.DispatchRequest, copy: int) -> None:
        await self._amqp.publish(
            queue,
            request.SerializeToString(),
            message_id=uuid.uuid4().hex,
            message_type=DISPATCH_TYPE,
            headers={COPY_HEADER: copy},
        )

    async def statuses(self, updates: Sequence[common_pb.StatusUpdate]) -> None:
        await asyncio.gather(
            *(
                self._amqp.publish(
                    f"dispatch.{update.tenant_id}",
                    update.SerializeToString(),
                    exchange=STATUS_EXCHANGE,
                    message_id=uuid.uuid4().hex,
                    message_type=STATUS_TYPE,
                )
                for update in updates
            )
        )
