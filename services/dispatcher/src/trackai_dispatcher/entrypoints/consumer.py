"""The ``consume`` process's background tasks: the ``capi-dispatch`` consumer with its graceful
hand-back on SIGTERM, and the monitor's loop with its gauges (the round itself, expiry sweep and
Meta-wide outage detection, is the service layer's ``Monitor``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from opentelemetry.metrics import Observation

from trackai.matcher.v1 import events_pb2 as matcher_pb
from trackai_dispatcher.adapters.broker import DispatchConsumer, Receipt, destination_of
from trackai_dispatcher.adapters.wire import conversion
from trackai_dispatcher.service_layer.batch import Disposition
from trackai_dispatcher.service_layer.batching import Batcher, Pending, Settle
from trackai_dispatcher.service_layer.delivery import Dispatcher
from trackai_dispatcher.service_layer.monitor import Monitor
from trackai_dispatcher.service_layer.ports import Delivery
from trackai_kit.amqp import AmqpClient, RetryPolicy, record_lag
from trackai_kit.backoff import Backoff
from trackai_kit.logging import get_logger
from trackai_kit.telemetry import extract_context, get_meter, spans_exported
from trackai_kit.topology import CAPI_DISPATCH

log = get_logger(__name__)
_meter = get_meter("trackai.dispatcher")


def settler(consumer: DispatchConsumer) -> Settle:
    """The batcher's ``Settle`` over ``consumer``: each message by its disposition."""

    async def settle(receipts: Sequence[tuple[object, Disposition]]) -> None:
        by: dict[Disposition, list[Receipt]] = {d: [] for d in Disposition}
        for receipt, disposition in receipts:
            assert isinstance(receipt, Receipt)
            by[disposition].append(receipt)
        await consumer.settle(by[Disposition.ACK], by[Disposition.REQUEUE], by[Disposition.RETRY])

    return settle


class ConsumerTask:
    """Background task: consume until stop, then drain (finish or hand back) and close."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        amqp: AmqpClient,
        amqp_url: str,
        *,
        prefetch: int,
        batch_max: int,
        deadline_s: float,
        workers: int,
        shutdown_grace_s: float,
        retry: RetryPolicy,
    ) -> None:
        self._dispatcher = dispatcher
        self._amqp = amqp
        self._url = amqp_url
        self._prefetch = prefetch
        self._batch_max = batch_max
        self._deadline_s = deadline_s
        self._workers = workers
        self._grace_s = shutdown_grace_s
        self._retry = retry

    async def __call__(self, stop: asyncio.Event) -> None:
        def on_delivery(request: matcher_pb.DispatchRequest, copy: int, receipt: Receipt) -> None:
            headers = receipt.message.headers or {}
            if copy == 0:  # a later copy waited in a delay queue on purpose
                record_lag(CAPI_DISPATCH, headers)
            context = extract_context(headers) if spans_exported() else None
            delivery = Delivery(conversion(request), copy, source=request)
            batcher.add(destination_of(request), Pending(delivery, receipt, context))

        consumer = DispatchConsumer(
            self._amqp, self._url, self._prefetch, on_delivery, retry=self._retry
        )

        batcher = Batcher(
            self._dispatcher,
            settler(consumer),
            batch_max=self._batch_max,
            deadline_s=self._deadline_s,
            workers=self._workers,
        )
        await self._start(consumer, stop)
        try:
            await stop.wait()
        finally:
            await consumer.stop()
            log.info("consumer stopped; draining in-flight batches", grace_s=self._grace_s)
            await batcher.drain(self._grace_s)
            await consumer.close()
            log.info("consumer drained")

    async def _start(self, consumer: DispatchConsumer, stop: asyncio.Event) -> None:
        # The broker may not be up yet (the host declares the topology once it is).
        backoff = Backoff()
        while not stop.is_set():
            try:
                await self._amqp.ping()
                await consumer.start()
                log.info("consuming", prefetch=self._prefetch, batch_max=self._batch_max)
                return
            except Exception as exc:
                log.warning("cannot consume yet", error=repr(exc))
                await consumer.close()
                await backoff.pause(stop)


#: The breaker-state gauge's values.
_BREAKER_VALUES = {"half_open": 1, "open": 2}


class MonitorTask:
    """Background task: a :class:`Monitor` round every ``interval_s``, and the gauges that
    show its last figures."""

    def __init__(self, monitor: Monitor, *, interval_s: float = 10.0) -> None:
        self._monitor = monitor
        self._interval_s = interval_s
        _meter.create_observable_gauge(
            "trackai.dispatcher.meta_outage",
            callbacks=[lambda _: [Observation(int(monitor.outage))]],
            description="1 while failures on Meta's side span many destinations",
        )
        _meter.create_observable_gauge(
            "trackai.dispatcher.failing_destinations",
            callbacks=[lambda _: [Observation(monitor.failing)]],
            unit="{destination}",
            description="Destinations with Meta-side failures within the outage window",
        )
        _meter.create_observable_gauge(
            "trackai.dispatcher.dead_events",
            callbacks=[self._observe_dead],
            unit="{event}",
            description="Dead events awaiting replay (the database side of the DLQ)",
        )
        _meter.create_observable_gauge(
            "trackai.dispatcher.breaker_state",
            callbacks=[self._observe_breaker_states],
            description="Breaker of each destination that is not closed: 1 half-open, 2 open "
            "(a closed breaker has no series; one per failing pixel at most)",
        )
        _meter.create_observable_gauge(
            "trackai.dispatcher.breakers",
            callbacks=[self._observe_breakers],
            unit="{destination}",
            description="Destinations whose breaker is open or half-open, by state",
        )

    def _observe_dead(self, _: object) -> list[Observation]:
        counts = self._monitor.counts
        return [] if counts is None else [Observation(counts.dead)]

    def _observe_breakers(self, _: object) -> list[Observation]:
        counts = self._monitor.counts
        if counts is None:
            return []
        return [
            Observation(counts.open, {"state": "open"}),
            Observation(counts.half_open, {"state": "half_open"}),
        ]

    def _observe_breaker_states(self, _: object) -> list[Observation]:
        return [
            Observation(
                _BREAKER_VALUES[b.state], {"tenant_id": b.tenant_id, "pixel_id": b.pixel_id}
            )
            for b in self._monitor.breakers
        ]

    async def __call__(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._monitor.check()
            except Exception:
                log.warning("monitor round failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval_s)
