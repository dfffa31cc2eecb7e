"""RabbitMQ side of the dispatcher: the ``capi-dispatch`` consumer (deliveries held unacked while
they are batched), copies to the retry delay queues, replays, and status updates.

The consumer has its own connection: the broker throttles a publishing connection under memory
pressure, and that must not stall the acks that would relieve it. Status updates have their own
connection too: one per event, they are the dispatcher's most frequent publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import aio_pika
import aio_pika.abc
import aiormq
import aiormq.abc
from aiormq import spec
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from trackai.common.v1 import events_pb2 as common_pb
from trackai.matcher.v1 import events_pb2 as matcher_pb
from trackai_dispatcher.adapters.wire import replay_request, request_of, status_messages
from trackai_dispatcher.domain.model import Destination
from trackai_dispatcher.service_layer.ports import Delivery, StatusUpdate, StoredDispatch
from trackai_kit.amqp import AmqpClient, PublishFailed, RetryPolicy
from trackai_kit.identity import is_event_id
from trackai_kit.logging import get_logger
from trackai_kit.telemetry import inject_headers
from trackai_kit.topology import CAPI_DISPATCH, STATUS_EXCHANGE, retry_queue_name

log = get_logger(__name__)
tracer = trace.get_tracer(__name__)

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


def _ids(message: aio_pika.abc.AbstractIncomingMessage) -> dict[str, str]:
    """The tenant and event a message is about, for its log line (Sentry's tags)."""
    try:
        request, _ = parse(message)
    except Malformed:
        return {}
    return {"tenant_id": request.tenant_id, "event_id": request.event.event_id}


def destination_of(request: matcher_pb.DispatchRequest) -> Destination:
    return Destination(str(uuid.UUID(request.tenant_id)), request.pixel_id)


#: How long a settled ack may wait for the deliveries before it, so that one frame acks them all.
ACK_COALESCE_S = 0.1
#: How long ``close()`` lets the last acks settle before the channel goes (see ``close``).
ACK_SETTLE_S = 0.5


class AckWindow:
    """Acknowledges one channel's deliveries with as few frames as it can.

    Delivery tags on a channel run 1, 2, 3...; once every tag up to N is settled, one
    ``basic.ack(N, multiple)`` acknowledges all those still waiting (never a tag that is not
    settled: the run must be unbroken). A settled tag stuck behind an unsettled one is acked on
    its own after ``coalesce_s``, so a slow batch does not hold back the others' prefetch credit.
    Deciding what to ack and queueing the frame happen under one lock: an ack of a single tag
    must reach the broker before a multiple ack that would cover it (a second ack of a tag is a
    channel error).
    """

    def __init__(self, channel: aiormq.abc.AbstractChannel, coalesce_s: float) -> None:
        self.channel = channel
        self._coalesce_s = coalesce_s
        #: Every tag up to this one is settled and its ack sent (or covered by a later one).
        self._through = 0
        #: Settled tags past ``_through``: True while their ack is still to be sent.
        self._settled: dict[int, bool] = {}
        self._waiting = 0
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._stragglers: asyncio.Task[None] | None = None
        #: ``loop.time()`` of the last ack frame queued (0: none yet).
        self.last_ack_at = 0.0

    def handled(self, tag: int) -> None:
        """The delivery was rejected or handed back on its own (its frame already queued)."""
        self._settled[tag] = False

    async def ack(self, tags: Sequence[int]) -> None:
        async with self._lock:
            for tag in tags:
                self._settled[tag] = True
            self._waiting += len(tags)
            last = 0
            while (waiting := self._settled.pop(self._through + 1, None)) is not None:
                self._through += 1
                if waiting:
                    last = self._through
                    self._waiting -= 1
            if last:
                await self.channel.basic_ack(last, multiple=True, wait=False)
                self.last_ack_at = asyncio.get_running_loop().time()
        if self._waiting and self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._coalesce_s, self._start_stragglers)

    def _start_stragglers(self) -> None:
        self._timer = None
        self._stragglers = asyncio.create_task(settle(self.flush()))

    async def flush(self) -> None:
        """Send the acks still waiting, each on its own."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        async with self._lock:
            for tag, waiting in list(self._settled.items()):
                if waiting:
                    self._settled[tag] = False
                    self._waiting -= 1
                    await self.channel.basic_ack(tag, wait=False)
                    self.last_ack_at = asyncio.get_running_loop().time()


@dataclass(frozen=True)
class Receipt:
    """What settling a delivery needs: its message and the ack window of its channel."""

    message: aio_pika.abc.AbstractIncomingMessage
    window: AckWindow

    @property
    def tag(self) -> int:
        tag = self.message.delivery_tag
        assert tag is not None  # manual acks: every delivery has one
        return tag


OnDelivery = Callable[[matcher_pb.DispatchRequest, int, Receipt], None]


class DispatchConsumer:
    """Consumes ``capi-dispatch`` with manual acks; ``stop()`` cancels delivery but keeps the
    channel open, so held messages can still be acked or handed back before ``close()``."""

    def __init__(
        self,
        amqp: AmqpClient,
        url: str,
        prefetch: int,
        on_delivery: OnDelivery,
        *,
        retry: RetryPolicy,
    ) -> None:
        self._amqp = amqp
        self._retry = retry
        self._queue_name = amqp.name(CAPI_DISPATCH)
        self._url = url
        self._prefetch = prefetch
        self._on_delivery = on_delivery
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._tag: str | None = None
        #: The current channel's; a reconnect opens a new channel whose tags start again at 1.
        self._window: AckWindow | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self._url, client_properties={"connection_name": "dispatcher-consumer"}
        )
        self._connection.reconnect_callbacks.add(self._reconnected)
        await self._consume()

    async def _consume(self) -> None:
        assert self._connection is not None
        channel = self._channel = await self._connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=self._prefetch)
        self._queue = await channel.get_queue(self._queue_name, ensure=False)
        self._tag = await self._queue.consume(self._receive)

    async def _reconnected(self, *_: Any) -> None:
        # After a broker restart (it closes connections with CONNECTION_FORCED) aio-pika's robust
        # channel may reopen without its consumer: consume on a new channel and close the old
        # one (see trackai_kit.amqp.ConsumerHandle).
        if self._tag is None:
            return  # stopped
        old = self._channel
        await self._consume()
        log.info("consuming again after a reconnect")
        if old is not None and not old.is_closed:
            with contextlib.suppress(Exception):
                await old.close()

    def _window_of(self, message: aio_pika.abc.AbstractIncomingMessage) -> AckWindow:
        channel = message.channel
        if self._window is None or self._window.channel is not channel:
            self._window = AckWindow(channel, ACK_COALESCE_S)
        return self._window

    async def _receive(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        receipt = Receipt(message, self._window_of(message))
        try:
            request, copy = parse(message)
        except Malformed as exc:
            log.error(
                "undeliverable message; dead-lettering it to the queue's DLQ",
                message_id=message.message_id,
                reason=str(exc),
            )
            await settle(message.reject(requeue=False))
            receipt.window.handled(receipt.tag)
            return
        try:
            self._on_delivery(request, copy, receipt)
        except Exception:
            log.exception(
                "could not take a delivery; handing it back", message_id=message.message_id
            )
            await settle(message.nack(requeue=True))
            receipt.window.handled(receipt.tag)

    async def settle(
        self,
        acked: Sequence[Receipt],
        handed_back: Sequence[Receipt],
        retried: Sequence[Receipt] = (),
    ) -> None:
        """Hand back (nack, requeue) one by one, copy the retried ones to a delay queue, then
        ack through the channels' windows (the retried ones too, once their copy is confirmed)."""
        for receipt in handed_back:
            await settle(receipt.message.nack(requeue=True))
            receipt.window.handled(receipt.tag)
        done = list(acked)
        for receipt in retried:
            if await self._retry_later(receipt):
                done.append(receipt)
        acks: dict[AckWindow, list[int]] = {}
        for receipt in done:
            acks.setdefault(receipt.window, []).append(receipt.tag)
        for window, tags in acks.items():
            await settle(window.ack(tags))

    async def _retry_later(self, receipt: Receipt) -> bool:
        """True when a copy waits in a delay queue (ack the original); otherwise the original
        was dead-lettered (retry window over) or handed back (no copy could be published)."""
        message = receipt.message
        delay_ms = self._retry.next_delay(message)
        if delay_ms is None:
            log.error(
                "message still failing after its retry window; dead-lettering it",
                message_id=message.message_id,
                **_ids(message),
            )
            await settle(message.reject(requeue=False))
            receipt.window.handled(receipt.tag)
            return False
        try:
            await self._amqp.retry_later(CAPI_DISPATCH, message, delay_ms)
        except PublishFailed:
            log.warning(
                "no retry copy could be published; handing the message back",
                message_id=message.message_id,
                exc_info=True,
            )
            await settle(message.nack(requeue=True))
            receipt.window.handled(receipt.tag)
            return False
        return True

    async def stop(self) -> None:
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except Exception:
                log.warning("could not cancel the consumer", exc_info=True)
            self._tag = None

    async def close(self) -> None:
        if self._window is not None:
            window, self._window = self._window, None
            await settle(window.flush())
            # A quorum queue may ignore acks that reach it just before their channel closes and
            # redeliver those messages (rabbitmq-server#10327, open): harmless here (the stale rule
            # acks a redelivered sent event without posting it again), but avoidable. Give the
            # last acks a moment to be applied (measured: 50 ms is enough on a quiet broker).
            since = asyncio.get_running_loop().time() - window.last_ack_at
            if since < ACK_SETTLE_S:
                await asyncio.sleep(ACK_SETTLE_S - since)
        if self._channel is not None and not self._channel.is_closed:
            # Acks go out without waiting (``wait=False``): closing the channel first (its
            # Close waits for Close-Ok, after every frame queued before it) sends them, where
            # closing the connection drops the frames still queued.
            await settle(self._channel.close())
        self._channel = None
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

    async def delay(self, delivery: Delivery, copy: int, delay_ms: int) -> None:
        # The message as received when there is one (it goes on unchanged), else rebuilt.
        source = delivery.source
        request = (
            source
            if isinstance(source, matcher_pb.DispatchRequest)
            else request_of(delivery.conversion)
        )
        await self._publish(retry_queue_name(CAPI_DISPATCH, delay_ms), request, copy)

    async def replay(self, dispatch: StoredDispatch, copy: int) -> None:
        await self._publish(CAPI_DISPATCH, replay_request(dispatch), copy)

    async def _publish(self, queue: str, request: matcher_pb.DispatchRequest, copy: int) -> None:
        await self._amqp.publish(
            queue,
            request.SerializeToString(),
            message_id=uuid.uuid4().hex,
            message_type=DISPATCH_TYPE,
            headers={COPY_HEADER: copy},
        )


class StatusPublisher:
    """Publishes ``StatusUpdate``s on ``trackai.status`` (routing key ``dispatch.<tenant_id>``),
    persistent and confirmed, over its own connection.

    A batch's updates go out under one span with one set of trace headers, straight on the
    channel, and their confirms are awaited together: the kit's traced publish per message cost
    the consumer more CPU than everything else it does for an event.
    """

    def __init__(self, url: str, exchange: str, *, timeout_s: float) -> None:
        self._url = url
        self._exchange = exchange
        self._timeout_s = timeout_s
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._lock = asyncio.Lock()

    async def _underlay(self) -> aiormq.Channel:
        async with self._lock:
            if self._channel is None:
                connection = await aio_pika.connect_robust(
                    self._url, client_properties={"connection_name": "dispatcher-status"}
                )
                try:
                    self._channel = await connection.channel(publisher_confirms=True)
                except BaseException:
                    await connection.close()
                    raise
                self._connection = connection
        # The concrete channel: its publish can skip waiting for the socket (``wait``).
        return cast(aiormq.Channel, await self._channel.get_underlay_channel())

    async def statuses(self, updates: Sequence[StatusUpdate]) -> None:
        if not updates:
            return
        messages = status_messages(updates)
        with tracer.start_as_current_span(
            f"{STATUS_EXCHANGE} publish",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.destination.name": STATUS_EXCHANGE,
                "messaging.batch.message_count": len(messages),
            },
        ):
            headers: dict[str, Any] = {}
            inject_headers(headers)
            async with asyncio.timeout(self._timeout_s):
                channel = await self._underlay()
                await asyncio.gather(
                    *(
                        channel.basic_publish(
                            update.SerializeToString(),
                            exchange=self._exchange,
                            routing_key=f"dispatch.{update.tenant_id}",
                            properties=spec.Basic.Properties(
                                content_type="application/x-protobuf",
                                delivery_mode=2,
                                message_id=uuid.uuid4().hex,
                                message_type=STATUS_TYPE,
                                headers=headers,
                            ),
                            # Written without waiting for the socket; the confirm is awaited.
                            wait=False,
                        )
                        for update in messages
                    )
                )

    async def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and not connection.is_closed:
            await connection.close()
