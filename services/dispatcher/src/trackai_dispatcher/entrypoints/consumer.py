"""The ``consume`` process's background tasks: the ``capi-dispatch`` consumer with its graceful
hand-back on SIGTERM, and the monitor (expiry sweep, Meta-wide outage detection)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry.metrics import Observation

from trackai.common.v1 import events_pb2 as common_pb
from trackai.matcher.v1 import events_pb2 as matcher_pb
from trackai_dispatcher.adapters import repository as repo
from trackai_dispatcher.adapters.broker import DispatchConsumer, Receipt, destination_of
from trackai_dispatcher.domain.model import EXPIRY_MARGIN_S, META_MAX_AGE_S
from trackai_dispatcher.service_layer.batching import Batcher, Pending, Settle
from trackai_dispatcher.service_layer.delivery import (
    EXPIRED,
    TOO_OLD_DETAIL,
    Delivery,
    Dispatcher,
    Disposition,
    Notifier,
)
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
            batcher.add(destination_of(request), Pending(Delivery(request, copy), receipt, context))

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


class Monitor:
    """Every ``interval_s``: expire undelivered events past Meta's limit, and tell whether Meta
    looks down for everyone (many destinations failing on Meta's side at once)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        notifier: Notifier,
        *,
        outage_destinations: int,
        outage_window_s: float,
        interval_s: float = 10.0,
    ) -> None:
        self._pool = pool
        self._notifier = notifier
        self._threshold = outage_destinations
        self._window_s = outage_window_s
        self._interval_s = interval_s
        self.failing = 0
        self.outage = False
        #: Last round's counts (``repo.health_counts``); None until the first round.
        self.counts: dict[str, int] | None = None
        _meter.create_observable_gauge(
            "trackai.dispatcher.meta_outage",
            callbacks=[lambda _: [Observation(int(self.outage))]],
            description="1 while failures on Meta's side span many destinations",
        )
        _meter.create_observable_gauge(
            "trackai.dispatcher.failing_destinations",
            callbacks=[lambda _: [Observation(self.failing)]],
            unit="{destination}",
            description="Destinations with Meta-side failures within the outage window",
        )
        _meter.create_observable_gauge(
            "trackai.dispatcher.dead_events",
            callbacks=[lambda _: self._observe("dead")],
            unit="{event}",
            description="Dead events awaiting replay (the database side of the DLQ)",
        )
        #: Destinations whose breaker is not closed, and its state (last round).
        self.breakers: list[tuple[str, str, str]] = []
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

    def _observe(self, key: str) -> list[Observation]:
        return [] if self.counts is None else [Observation(self.counts[key])]

    def _observe_breakers(self, _: object) -> list[Observation]:
        if self.counts is None:
            return []
        return [
            Observation(self.counts[state], {"state": state}) for state in ("open", "half_open")
        ]

    def _observe_breaker_states(self, _: object) -> list[Observation]:
        return [
            Observation(_BREAKER_VALUES[state], {"tenant_id": tenant, "pixel_id": pixel})
            for tenant, pixel, state in self.breakers
        ]

    async def __call__(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check()
            except Exception:
                log.warning("monitor round failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval_s)

    async def check(self) -> None:
        now = datetime.now(UTC)
        horizon = now - timedelta(seconds=META_MAX_AGE_S - EXPIRY_MARGIN_S)
        async with self._pool.acquire() as conn:
            expired = await repo.expire_overdue(conn, horizon, TOO_OLD_DETAIL)
            self.failing = await repo.failing_destinations(conn, self._window_s)
            self.counts = await repo.health_counts(conn)
            self.breakers = await repo.unclosed_breakers(conn)
        if expired:
            EXPIRED.add(len(expired))
            stamp = Timestamp()
            stamp.FromDatetime(now)
            log.warning("undelivered events expired", count=len(expired))
            await self._notifier.statuses(
                [
                    common_pb.StatusUpdate(
                        tenant_id=str(row["tenant_id"]),
                        entity=common_pb.STATUS_ENTITY_DISPATCH,
                        entity_id=row["event_id"],
                        status="expired",
                        detail="event_too_old",
                        time=stamp,
                    )
                    for row in expired
                ]
            )
        outage = self.failing >= self._threshold
        if outage and not self.outage:
            log.error(
                "META-WIDE OUTAGE suspected: Meta-side failures across many destinations",
                failing_destinations=self.failing,
                window_s=self._window_s,
            )
        elif self.outage and not outage:
            log.info("Meta-wide outage over", failing_destinations=self.failing)
        self.outage = outage
