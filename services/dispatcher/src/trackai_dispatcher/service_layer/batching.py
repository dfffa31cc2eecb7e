"""Groups deliveries per destination into batches flushed by size or deadline, and runs them on a
fixed number of workers (twice the POST concurrency: the dispatcher bounds the POSTs, the rest of
a batch overlaps them); each message is settled (acked or handed back) only after its batch
committed, or retried later through a delay queue when the batch failed.

Back-pressure is the broker's prefetch: messages held here are unacknowledged, so once
``prefetch`` of them wait, the broker stops delivering. With ``prefetch`` at least
``(workers + 1) x batch_max`` every batch in progress can be full while the next one fills; with
less, batches close on the deadline instead of on size, which only makes them smaller.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind

from trackai_dispatcher.domain.model import Destination
from trackai_dispatcher.service_layer.batch import Disposition
from trackai_dispatcher.service_layer.delivery import Dispatcher
from trackai_dispatcher.service_layer.ports import Delivery
from trackai_kit.logging import get_logger
from trackai_kit.telemetry import spans_exported
from trackai_kit.topology import CAPI_DISPATCH

log = get_logger(__name__)
tracer = trace.get_tracer(__name__)


@dataclass(frozen=True)
class Pending:
    delivery: Delivery
    #: The transport's handle of the message, given back to ``Settle`` with its disposition.
    receipt: object
    #: The trace the message belongs to (its sale's), while spans are exported.
    trace_context: Context | None = None


def _consume_span(items: list[Pending]) -> AbstractContextManager[object]:
    """One consumer span for a batch: a child of its first message's trace, linked to the others'
    (OpenTelemetry's messaging conventions for a batch); none while spans are not exported."""
    contexts = [p.trace_context for p in items if p.trace_context is not None]
    if not contexts or not spans_exported():
        return contextlib.nullcontext()
    return tracer.start_as_current_span(
        f"{CAPI_DISPATCH} process",
        context=contexts[0],
        kind=SpanKind.CONSUMER,
        links=[Link(trace.get_current_span(c).get_span_context()) for c in contexts[1:]],
        attributes={
            "messaging.system": "rabbitmq",
            "messaging.source.name": CAPI_DISPATCH,
            "messaging.batch.message_count": len(items),
        },
    )


#: Acks or hands back a batch's messages (together, so the transport can coalesce the acks).
Settle = Callable[[Sequence[tuple[object, Disposition]]], Awaitable[None]]


class Batcher:
    def __init__(
        self,
        dispatcher: Dispatcher,
        settle: Settle,
        *,
        batch_max: int,
        deadline_s: float,
        workers: int,
    ) -> None:
        self._dispatcher = dispatcher
        self._settle = settle
        self._batch_max = batch_max
        self._deadline_s = deadline_s
        self._open: dict[Destination, list[Pending]] = {}
        self._timers: dict[Destination, asyncio.TimerHandle] = {}
        self._ready: asyncio.Queue[tuple[Destination, list[Pending]]] = asyncio.Queue()
        self._workers = [
            asyncio.create_task(self._work(), name=f"batch-{i}") for i in range(workers)
        ]
        self._busy = 0
        #: Set when the shutdown grace ran out: unstarted batches and unsplit halves go back.
        self._hand_back = False

    def add(self, destination: Destination, pending: Pending) -> None:
        items = self._open.setdefault(destination, [])
        items.append(pending)
        if len(items) >= self._batch_max:
            self._flush(destination)
        elif len(items) == 1:
            loop = asyncio.get_running_loop()
            self._timers[destination] = loop.call_later(self._deadline_s, self._flush, destination)

    def _flush(self, destination: Destination) -> None:
        timer = self._timers.pop(destination, None)
        if timer is not None:
            timer.cancel()
        items = self._open.pop(destination, None)
        if items:
            self._ready.put_nowait((destination, items))

    @property
    def idle(self) -> bool:
        return not self._open and self._ready.empty() and self._busy == 0

    async def _work(self) -> None:
        while True:
            destination, items = await self._ready.get()
            self._busy += 1
            try:
                await self._run(destination, items)
            finally:
                self._busy -= 1

    async def _run(self, destination: Destination, items: list[Pending]) -> None:
        if self._hand_back:
            await self._settle_all(items, [Disposition.REQUEUE] * len(items))
            return
        try:
            with _consume_span(items):
                dispositions = await self._dispatcher.dispatch(
                    destination, [p.delivery for p in items], stopping=lambda: self._hand_back
                )
        except Exception:
            log.exception("batch failed; its messages retry later", destination=str(destination))
            dispositions = [Disposition.RETRY] * len(items)
        await self._settle_all(items, dispositions)

    async def _settle_all(self, items: list[Pending], dispositions: list[Disposition]) -> None:
        await self._settle([(p.receipt, d) for p, d in zip(items, dispositions, strict=True)])

    async def drain(self, grace_s: float) -> None:
        """Flush what is accumulating, finish in-flight batches within ``grace_s``, then hand
        back whatever has not started (and stop splitting the batches still running)."""
        for destination in list(self._open):
            self._flush(destination)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while not self.idle and loop.time() < deadline:  # noqa: ASYNC110 - several conditions
            await asyncio.sleep(0.05)
        self._hand_back = True
        while not self.idle:  # noqa: ASYNC110
            # Running batches end within one Meta timeout once they stop splitting.
            await asyncio.sleep(0.05)
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        await self._dispatcher.flush_notifications()
