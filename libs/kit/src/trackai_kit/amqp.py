"""RabbitMQ client: topology declaration, confirmed publishing and manually acknowledged consumers.

A message is acknowledged only after its handler returns (the handler commits its transaction
first). A handler that raises :class:`Poison` dead-letters the message; any other failure is
retried: a copy goes to the queue's delay queue (with back-off, see :class:`RetryPolicy`) and the
original is acknowledged, so retries neither spin nor count against the quorum delivery limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any

import aio_pika
import aio_pika.abc
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from trackai_kit.logging import clear_context, get_logger
from trackai_kit.settings import AmqpSettings
from trackai_kit.telemetry import (
    exported_span,
    extract_context,
    get_meter,
    inject_headers,
    metrics_exported,
)
from trackai_kit.topology import Topology, retry_queue_name

IncomingMessage = aio_pika.abc.AbstractIncomingMessage
Handler = Callable[[IncomingMessage], Awaitable[None]]

PING_TIMEOUT_S = 2.0
#: Retries a message has had (headers of the copies published to a delay queue).
RETRIES_HEADER = "x-trackai-retries"
#: Unix time of the message's first failure: retries stop ``give_up_after_s`` after it.
FIRST_FAILURE_HEADER = "x-trackai-first-failure"
#: Who replayed a dead letter (set by `trackai dlq replay --queue`, logged by consumers).
REPLAYED_BY_HEADER = "x-trackai-replayed-by"
#: Pause before requeueing when not even the delay queue takes the copy (broker trouble).
REQUEUE_PAUSE_S = 1.0
#: Unix time in milliseconds of a message's publish (every publish sets it): the consumer lag.
PUBLISHED_MS_HEADER = "x-trackai-published-ms"

_meter = get_meter("trackai.amqp")
CONSUMER_LAG = _meter.create_histogram(
    "trackai.consumer.lag",
    unit="s",
    description="Time a message waited in its queue, from its publish to its handling",
    explicit_bucket_boundaries_advisory=[0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900],
)


def record_lag(queue: str, headers: Mapping[str, Any]) -> None:
    """Record how long a first delivery waited in ``queue`` (a retried copy's wait in a delay
    queue is deliberate, so it is left out)."""
    published = headers.get(PUBLISHED_MS_HEADER)
    if not isinstance(published, int) or RETRIES_HEADER in headers or not metrics_exported():
        return
    CONSUMER_LAG.record(max(0.0, time.time() - published / 1000), {"queue": queue})


log = get_logger(__name__)
tracer = trace.get_tracer(__name__)

# Names declared under a non-empty prefix, so test fixtures can delete exactly what a test created.
# Production runs without a prefix and records nothing here.
_declared: dict[str, dict[str, set[str]]] = {}


def declared_names(prefix: str) -> tuple[set[str], set[str]]:
    """Queues and exchanges this process declared under ``prefix`` (empty sets if none)."""
    entry = _declared.get(prefix, {})
    return set(entry.get("queues", ())), set(entry.get("exchanges", ()))


def forget_prefix(prefix: str) -> None:
    """Drop the record of names declared under ``prefix`` (after they were deleted)."""
    _declared.pop(prefix, None)


class Poison(Exception):
    """Raised by a handler for a message that can never be processed (undecodable, invalid):
    it is dead-lettered at once. Every other exception is treated as transient and retried."""


class RetryLater(Exception):
    """Raised by a handler for a message that is not ready to be processed yet (it waits for
    another message): retried through the delay queues like a failure, but logged at info and
    not marked as an error on its span."""


@dataclass(frozen=True)
class RetryPolicy:
    """Back-off of a consumer's retries: the delay queues it may use, and when to give up."""

    #: Delays of the queue's ``<queue>.retry.<ms>`` queues, shortest first; the last repeats.
    delays_ms: tuple[int, ...]
    #: A message still failing this long after its first failure is dead-lettered (replayable).
    give_up_after_s: float = 24 * 3600.0

    def next_delay(self, message: IncomingMessage) -> int | None:
        """The delay before ``message``'s next try; None once its retry window is over."""
        retries, first_failure = retry_state(message)
        if first_failure is not None and time.time() - first_failure > self.give_up_after_s:
            return None
        return self.delays_ms[min(retries, len(self.delays_ms) - 1)]


class PublishFailed(Exception):
    """The broker did not confirm a publish (nack, unroutable, timeout or connection lost)."""


class ConsumerHandle:
    """A running consumer; :meth:`cancel` stops delivery and closes its channel.

    It outlives a broker restart: aio-pika's robust channel does not always come back consuming
    when the broker closes the connection itself (a clean shutdown sends ``CONNECTION_FORCED``):
    the channel reopens but its consumer is not registered again, so the process looks healthy
    and consumes nothing. After every reconnect the handle therefore consumes on a new channel
    and closes the old one (whatever it held was returned to the queue when the connection
    dropped; consumers are idempotent, so a message restored on both is harmless).
    """

    def __init__(
        self,
        connection: aio_pika.abc.AbstractRobustConnection,
        queue_name: str,
        prefetch: int,
        on_message: Callable[[IncomingMessage], Awaitable[None]],
    ) -> None:
        self._connection = connection
        self._queue_name = queue_name
        self._prefetch = prefetch
        self._on_message = on_message
        self._cancelled = False
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self.consumer_tag = ""

    async def start(self) -> None:
        channel = await self._connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=self._prefetch)
        queue = await channel.get_queue(self._queue_name, ensure=False)
        self.consumer_tag = str(await queue.consume(self._on_message))
        self._channel, self._queue = channel, queue
        self._connection.reconnect_callbacks.add(self._reconnected)

    async def _reconnected(self, *_: Any) -> None:
        if self._cancelled:
            return
        old = self._channel
        self._connection.reconnect_callbacks.discard(self._reconnected)
        await self.start()
        log.info("consuming again after a reconnect", queue=self._queue_name)
        if old is not None and not old.is_closed:
            with contextlib.suppress(Exception):
                await old.close()

    async def cancel(self) -> None:
        """Stop receiving; unacknowledged messages return to the queue when the channel closes."""
        self._cancelled = True
        self._connection.reconnect_callbacks.discard(self._reconnected)
        if self._channel is None or self._queue is None or self._channel.is_closed:
            return
        with contextlib.suppress(Exception):
            await self._queue.cancel(self.consumer_tag)
        with contextlib.suppress(Exception):
            await self._channel.close()


class AmqpClient:
    """One robust connection with a confirm-mode publishing channel; one channel per consumer.

    Queue and exchange names given to every method are logical; ``settings.prefix`` is applied here.
    """

    def __init__(self, settings: AmqpSettings, *, connection_name: str = "trackai") -> None:
        self._settings = settings
        self._connection_name = connection_name
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._exchanges: dict[str, aio_pika.abc.AbstractExchange] = {}
        self._lock = asyncio.Lock()

    @property
    def prefix(self) -> str:
        return self._settings.prefix

    def name(self, logical: str) -> str:
        """The broker-side name of a queue or exchange (the default exchange ``""`` stays as is)."""
        return f"{self._settings.prefix}{logical}" if logical else logical

    async def __aenter__(self) -> AmqpClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the connection and the publishing channel (no-op when already open)."""
        async with self._lock:
            if self._connection is not None and not self._connection.is_closed:
                return
            connection = await aio_pika.connect_robust(
                self._settings.url,
                timeout=self._settings.connect_timeout_s,
                client_properties={"connection_name": self._connection_name},
            )
            try:
                self._channel = await connection.channel(
                    publisher_confirms=True, on_return_raises=True
                )
            except BaseException:
                await connection.close()
                raise
            self._connection = connection
            self._exchanges = {}

    async def close(self) -> None:
        """Close channels and connection; safe to call twice."""
        connection, self._connection, self._channel = self._connection, None, None
        self._exchanges = {}
        if connection is not None and not connection.is_closed:
            await connection.close()

    async def _connected(self) -> aio_pika.abc.AbstractRobustConnection:
        if self._connection is None or self._connection.is_closed:
            await self.connect()
        assert self._connection is not None
        return self._connection

    async def ping(self) -> None:
        """Raise unless the broker answers a channel open/close round trip within a short time."""
        async with asyncio.timeout(PING_TIMEOUT_S):
            connection = await self._connected()
            channel = await connection.channel(publisher_confirms=False)
            await channel.close()

    async def declare(self, topology: Topology) -> None:
        """Declare exchanges, queues (DLQs first) and bindings; idempotent."""
        connection = await self._connected()
        topo = topology.prefixed(self.prefix)
        # A mismatching redeclaration closes the channel it happens on: keep it off the publisher.
        channel = await connection.channel(publisher_confirms=False)
        try:
            for exchange in topo.exchanges:
                await channel.declare_exchange(
                    exchange.name, aio_pika.ExchangeType(exchange.type), durable=True
                )
                self._record("exchanges", exchange.name)
            for spec in topo.all_queues():
                queue = await channel.declare_queue(
                    spec.name, durable=True, arguments=spec.arguments()
                )
                self._record("queues", spec.name)
                for exchange_name, routing_key in spec.bindings:
                    await queue.bind(exchange_name, routing_key)
        finally:
            await channel.close()

    def _record(self, kind: str, name: str) -> None:
        if self.prefix:
            _declared.setdefault(self.prefix, {}).setdefault(kind, set()).add(name)

    async def _exchange(self, logical: str) -> aio_pika.abc.AbstractExchange:
        await self._connected()
        assert self._channel is not None
        if not logical:
            return self._channel.default_exchange
        if logical not in self._exchanges:
            self._exchanges[logical] = await self._channel.get_exchange(
                self.name(logical), ensure=False
            )
        return self._exchanges[logical]

    async def publish(
        self,
        routing_key: str,
        body: bytes,
        *,
        exchange: str = "",
        message_id: str,
        message_type: str,
        headers: dict[str, Any] | None = None,
        content_type: str = "application/x-protobuf",
        expiration_ms: int | None = None,
    ) -> None:
        """Publish a persistent message and wait for the broker's confirm.

        With the default exchange ``routing_key`` is a queue name (prefixed, and unroutable messages
        raise); with a named exchange it is a routing key. Raises :class:`PublishFailed`.
        """
        target_key = self.name(routing_key) if not exchange else routing_key
        # A producer span only when somebody reads it; otherwise the current context (or the
        # traceparent already in ``headers``) is what travels, which is all the ids logs need.
        with exported_span(
            tracer,
            f"{exchange or routing_key} publish",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.destination.name": exchange or routing_key,
                "messaging.message.id": message_id,
            },
        ) as span:
            message_headers: dict[str, Any] = dict(headers or {})
            inject_headers(message_headers)
            message_headers[PUBLISHED_MS_HEADER] = int(time.time() * 1000)
            message = aio_pika.Message(
                body,
                message_id=message_id,
                type=message_type,
                headers=message_headers,
                content_type=content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                expiration=timedelta(milliseconds=expiration_ms) if expiration_ms else None,
            )
            try:
                async with asyncio.timeout(self._settings.publish_timeout_s):
                    target = await self._exchange(exchange)
                    await target.publish(message, target_key, mandatory=not exchange)
            except Exception as exc:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise PublishFailed(
                    f"publish of {message_id} to {exchange or '(default)'}/{target_key} "
                    f"failed: {type(exc).__name__}: {exc}"
                ) from exc

    async def consume(
        self,
        queue: str,
        handler: Handler,
        *,
        prefetch: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> ConsumerHandle:
        """Start consuming ``queue`` on its own channel; returns a handle to cancel it.

        With ``retry`` a failed message is copied to ``queue``'s delay queue and acknowledged
        (the topology must declare those queues); without, it is requeued after a pause.
        """
        connection = await self._connected()
        handle = ConsumerHandle(
            connection,
            self.name(queue),
            prefetch or self._settings.prefetch,
            _acknowledging(self, queue, handler, retry),
        )
        await handle.start()
        return handle

    async def retry_later(self, queue: str, message: IncomingMessage, delay_ms: int) -> None:
        """Publish a copy of ``message`` to ``queue``'s delay queue of ``delay_ms``, with its
        retry count raised and the time of its first failure kept (confirmed before returning)."""
        retries, first_failure = retry_state(message)
        headers = dict(message.headers or {})
        headers[RETRIES_HEADER] = retries + 1
        headers[FIRST_FAILURE_HEADER] = int(first_failure or time.time())
        await self.publish(
            retry_queue_name(queue, delay_ms),
            message.body,
            message_id=message.message_id or "",
            message_type=message.type or "",
            headers=headers,
            content_type=message.content_type or "application/x-protobuf",
        )


def retry_state(message: IncomingMessage) -> tuple[int, float | None]:
    """How many times ``message`` was retried, and the unix time of its first failure."""
    headers = message.headers or {}
    retries = headers.get(RETRIES_HEADER)
    first = headers.get(FIRST_FAILURE_HEADER)
    return (
        retries if isinstance(retries, int) else 0,
        float(first) if isinstance(first, int) else None,
    )


def _acknowledging(
    client: AmqpClient, queue: str, handler: Handler, retry: RetryPolicy | None
) -> Callable[[IncomingMessage], Awaitable[None]]:
    async def on_message(message: IncomingMessage) -> None:
        # What a handler binds (tenant, event) labels this message's log lines and Sentry
        # events only.
        clear_context()
        record_lag(queue, message.headers or {})
        context = extract_context(message.headers or {})
        with tracer.start_as_current_span(
            f"{queue} process",
            context=context,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.source.name": queue,
                "messaging.message.id": message.message_id or "",
            },
        ) as span:
            try:
                await handler(message)
            except Poison as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                log.error(
                    "message cannot be processed; dead-lettering",
                    queue=queue,
                    message_id=message.message_id,
                    message_type=message.type,
                    reason=str(exc),
                )
                await _settle(message.reject(requeue=False), message)
                return
            except RetryLater as exc:
                span.set_attribute("trackai.retry_later", str(exc))
                await _retry(client, queue, message, retry, exc, deferred=True)
                return
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                await _retry(client, queue, message, retry, exc)
                return
            await _settle(message.ack(), message)

    return on_message


async def _retry(
    client: AmqpClient,
    queue: str,
    message: IncomingMessage,
    policy: RetryPolicy | None,
    error: Exception,
    *,
    deferred: bool = False,
) -> None:
    fields = {
        "queue": queue,
        "message_id": message.message_id,
        "error": f"{type(error).__name__}: {error}",
        "retries": retry_state(message)[0],
    }
    if policy is None:
        log.warning("message handler failed; requeueing", **fields)
        await asyncio.sleep(REQUEUE_PAUSE_S)
        await _settle(message.nack(requeue=True), message)
        return
    delay_ms = policy.next_delay(message)
    if delay_ms is None:
        log.error("message still failing after its retry window; dead-lettering", **fields)
        await _settle(message.reject(requeue=False), message)
        return
    try:
        await client.retry_later(queue, message, delay_ms)
    except PublishFailed:
        log.warning("message handler failed and no retry copy could be published", **fields)
        await asyncio.sleep(REQUEUE_PAUSE_S)
        await _settle(message.nack(requeue=True), message)
        return
    if deferred:
        log.info("message deferred; retrying later", delay_ms=delay_ms, **fields)
    else:
        # No traceback: a rendered one carries the frames' locals (message bodies, secrets).
        log.warning("message handler failed; retrying later", delay_ms=delay_ms, **fields)
    await _settle(message.ack(), message)


async def _settle(action: Awaitable[None], message: IncomingMessage) -> None:
    # The channel may have closed while the handler ran; the broker then redelivers the message,
    # which idempotent handlers tolerate, so a failed settle is logged rather than raised.
    try:
        await action
    except Exception:
        log.warning("could not settle message", message_id=message.message_id, exc_info=True)
