"""The per-tenant fan-out of status updates and the Last-Event-ID resume (pure asyncio)."""

from __future__ import annotations

import asyncio

from trackai_console.service_layer.live import LiveUpdate, StatusHub


async def _publish(hub: StatusHub, tenant: str, entity_id: str, status: str = "sent") -> None:
    await hub.publish(tenant, entity="dispatch", entity_id=entity_id, status=status, detail="")


async def _take(stream, n: int) -> list[LiveUpdate]:  # type: ignore[no-untyped-def]
    taken: list[LiveUpdate] = []
    async for item in stream:
        if item is not None:
            taken.append(item)
        if len(taken) == n:
            break
    return taken


async def test_updates_reach_only_their_tenants_subscribers() -> None:
    hub = StatusHub()
    a = hub.subscribe("tenant-a", heartbeat_s=0.05)
    b = hub.subscribe("tenant-b", heartbeat_s=0.05)
    # Start both streams so they are registered before anything is published.
    first_a = asyncio.ensure_future(_take(a, 2))
    first_b = asyncio.ensure_future(_take(b, 1))
    while hub.subscriber_count("tenant-a") < 1 or hub.subscriber_count("tenant-b") < 1:
        await asyncio.sleep(0.01)
    await _publish(hub, "tenant-a", "ev-a1")
    await _publish(hub, "tenant-b", "ev-b1")
    await _publish(hub, "tenant-a", "ev-a2")
    got_a, got_b = await asyncio.wait_for(asyncio.gather(first_a, first_b), 2)
    assert [u.entity_id for u in got_a] == ["ev-a1", "ev-a2"]
    assert [u.entity_id for u in got_b] == ["ev-b1"]
    assert all(u.tenant_id == "tenant-a" for u in got_a)


async def test_a_reconnect_resumes_after_the_last_event_id() -> None:
    hub = StatusHub()
    for i in range(5):
        await _publish(hub, "t", f"ev-{i}")
    await _publish(hub, "other", "ev-x")
    # A fresh subscriber gets no history (the page it belongs to was just rendered).
    seen = [u async for u in _first(hub.subscribe("t", "", heartbeat_s=0.01), 1)]
    assert seen == []
    # Resume after the second update: the three later ones come back, the other tenant's never.
    history = hub._history["t"]  # the ids the browser would have seen
    second_id = history[1][1].id
    resumed = await asyncio.wait_for(_take(hub.subscribe("t", second_id, 0.05), 3), 1)
    assert [u.entity_id for u in resumed] == ["ev-2", "ev-3", "ev-4"]
    # An id from another process (another epoch) resumes nothing.
    stale = [u async for u in _first(hub.subscribe("t", "deadbeef-1", heartbeat_s=0.01), 1)]
    assert stale == []


async def _first(stream, n: int):  # type: ignore[no-untyped-def]
    """The first ``n`` items (heartbeats stop the wait), without the heartbeats."""
    count = 0
    async for item in stream:
        count += 1
        if item is not None:
            yield item
        if count >= n:
            return


async def test_a_stalled_browser_is_cut_off_not_buffered_forever() -> None:
    hub = StatusHub()
    stream = hub.subscribe("t", heartbeat_s=5)
    started = asyncio.ensure_future(stream.__anext__())
    while hub.subscriber_count("t") < 1:
        await asyncio.sleep(0.01)
    for i in range(1001):
        await _publish(hub, "t", f"ev-{i}")
    assert hub.subscriber_count("t") == 0
    await started
