"""The batcher's decisions with an in-memory dispatcher: when a batch closes, per destination, and
what its messages become when the batch fails or shutdown runs out of time. No broker, no DB."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from trackai.matcher.v1 import events_pb2 as matcher_pb
from trackai_dispatcher.adapters.wire import conversion
from trackai_dispatcher.domain.model import Destination
from trackai_dispatcher.service_layer.batch import Disposition
from trackai_dispatcher.service_layer.batching import Batcher, Pending
from trackai_dispatcher.service_layer.ports import Delivery

A = Destination("t1", "pixel-a")
B = Destination("t1", "pixel-b")


class Dispatcher:
    """Records each batch; ``fail`` raises, ``hold`` keeps a batch running until released."""

    def __init__(self, *, fail: bool = False, hold: asyncio.Event | None = None) -> None:
        self.batches: list[tuple[Destination, list[str]]] = []
        self.fail = fail
        self.hold = hold

    async def dispatch(
        self, destination: Destination, deliveries: Sequence[Delivery], *, stopping: Any
    ) -> list[Disposition]:
        self.batches.append((destination, [d.event_id for d in deliveries]))
        if self.hold is not None:
            await self.hold.wait()
        if self.fail:
            raise ConnectionError("database away")
        return [Disposition.ACK] * len(deliveries)

    async def flush_notifications(self) -> None:
        return None


class Settled:
    def __init__(self) -> None:
        self.items: list[tuple[object, Disposition]] = []
        self.changed = asyncio.Event()

    async def __call__(self, items: Sequence[tuple[object, Disposition]]) -> None:
        self.items.extend(items)
        self.changed.set()

    async def count(self, n: int) -> None:
        while len(self.items) < n:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), timeout=30)


def pending(event_id: str) -> Pending:
    request = matcher_pb.DispatchRequest(event=matcher_pb.ServerEvent(event_id=event_id))
    return Pending(Delivery(conversion(request)), receipt=event_id)


def batcher(dispatcher: Dispatcher, settled: Settled, deadline_s: float = 3600) -> Batcher:
    return Batcher(dispatcher, settled, batch_max=3, deadline_s=deadline_s, workers=2)


async def test_a_full_batch_goes_at_once_and_destinations_never_mix() -> None:
    dispatcher, settled = Dispatcher(), Settled()
    b = batcher(dispatcher, settled)  # an hour's deadline: only size can close a batch
    for n in range(3):
        b.add(A, pending(f"a{n}"))
        b.add(B, pending(f"b{n}"))
    await settled.count(6)
    assert sorted(dispatcher.batches, key=str) == [(A, ["a0", "a1", "a2"]), (B, ["b0", "b1", "b2"])]
    assert {d for _, d in settled.items} == {Disposition.ACK}
    await b.drain(grace_s=5)


async def test_a_partial_batch_goes_on_its_deadline() -> None:
    dispatcher, settled = Dispatcher(), Settled()
    b = batcher(dispatcher, settled, deadline_s=0.01)
    b.add(A, pending("a0"))
    await settled.count(1)
    assert dispatcher.batches == [(A, ["a0"])]
    await b.drain(grace_s=5)


async def test_a_failed_batch_retries_every_message_later() -> None:
    dispatcher, settled = Dispatcher(fail=True), Settled()
    b = batcher(dispatcher, settled)
    for n in range(3):
        b.add(A, pending(f"a{n}"))
    await settled.count(3)
    assert settled.items == [(f"a{n}", Disposition.RETRY) for n in range(3)]
    await b.drain(grace_s=5)


async def test_shutdown_hands_back_what_has_not_started() -> None:
    hold = asyncio.Event()
    dispatcher, settled = Dispatcher(hold=hold), Settled()
    b = Batcher(dispatcher, settled, batch_max=1, deadline_s=3600, workers=1)
    b.add(A, pending("running"))
    while not dispatcher.batches:  # the only worker is now busy with it
        await asyncio.sleep(0.01)
    b.add(B, pending("waiting"))
    draining = asyncio.create_task(b.drain(grace_s=0))
    await asyncio.sleep(0.1)
    hold.set()  # the running batch ends; the waiting one must not start
    await asyncio.wait_for(draining, timeout=30)
    assert dict(settled.items) == {"running": Disposition.ACK, "waiting": Disposition.REQUEUE}
    assert [events for _, events in dispatcher.batches] == [["running"]]
