"""Delivery against the Meta fake: batching, routing, validation before batching, and splitting a
batch Meta refuses so only the offenders are dead-lettered."""

from __future__ import annotations

import asyncio
import time

import aio_pika
import asyncpg
import pytest

from trackai.common.v1 import events_pb2 as common_pb
from trackai_kit.amqp import AmqpClient
from trackai_kit.topology import STATUS_EXCHANGE
from trackai_sandbox.testing import MetaSandboxClient

from .conftest import (
    PIXEL,
    Env,
    Registry,
    Start,
    dispatch_request,
    event_id_for,
    publish,
    wait_states,
)

pytestmark = pytest.mark.integration


async def test_events_are_batched_and_delivered_once(
    env: Env,
    registry: Registry,
    meta: MetaSandboxClient,
    broker: AmqpClient,
    db: asyncpg.Pool,
    start_consumer: Start,
) -> None:
    tenant = registry.servicer.add_tenant(funnels={"f-test": "TEST123"})
    connection = await aio_pika.connect(env.amqp_url)
    channel = await connection.channel()
    statuses = await channel.declare_queue(exclusive=True)
    await statuses.bind(f"{env.amqp_prefix}{STATUS_EXCHANGE}", f"dispatch.{tenant}")
    requests = [dispatch_request(tenant, f"live-{i}") for i in range(60)]
    requests += [dispatch_request(tenant, f"test-{i}", funnel_id="f-test") for i in range(5)]
    await publish(broker, *requests)
    await start_consumer(DISPATCHER_BATCH_MAX="25", DISPATCHER_BATCH_DEADLINE_MS="300")

    found = await wait_states(db, tenant, 65, {"sent"})
    assert set(found.values()) == {"sent"}
    counts = meta.event_counts(pixel_id=PIXEL)
    assert sorted(c["event_id"] for c in counts) == sorted(r.event.event_id for r in requests)
    assert all(c["count"] == 1 for c in counts)
    posted = meta.requests(pixel_id=PIXEL)
    sizes = sorted(len(r["body"]["data"]) for r in posted if r["status"] == 200)
    assert sum(sizes) == 65 and max(sizes) == 25, sizes
    assert all(r["body"]["partner_agent"].startswith("trackai-") for r in posted)
    test_events = meta.events(test_event_code="TEST123")
    assert {e["event"]["event_id"] for e in test_events} == {
        event_id_for(f"test-{i}") for i in range(5)
    }
    # Money reaches Meta as a JSON number, exact.
    assert test_events[0]["event"]["custom_data"]["value"] == 129.9
    attempts = await db.fetch(
        "SELECT a.outcome, a.http_status, a.fbtrace_id, a.event_count, a.test_event_code,"
        " (SELECT count(*) FROM dispatch_attempt_events e WHERE e.attempt_id = a.id) AS links"
        " FROM dispatch_attempts a WHERE tenant_id = $1",
        tenant,
    )
    assert {a["outcome"] for a in attempts} == {"sent"}
    assert all(a["fbtrace_id"] and a["links"] == a["event_count"] for a in attempts)
    assert sum(a["event_count"] for a in attempts) == 65
    assert {a["test_event_code"] for a in attempts} == {None, "TEST123"}

    received: list[common_pb.StatusUpdate] = []
    deadline = time.monotonic() + 5
    while len(received) < 65 and time.monotonic() < deadline:
        message = await statuses.get(fail=False)
        if message is None:
            await asyncio.sleep(0.05)
            continue
        update = common_pb.StatusUpdate()
        update.ParseFromString(message.body)
        received.append(update)
        await message.ack()
    await connection.close()
    assert len(received) == 65
    assert {u.status for u in received} == {"sent"}
    assert {u.entity for u in received} == {common_pb.STATUS_ENTITY_DISPATCH}


async def test_an_invalid_event_is_dead_lettered_alone(
    registry: Registry,
    meta: MetaSandboxClient,
    broker: AmqpClient,
    db: asyncpg.Pool,
    start_consumer: Start,
) -> None:
    tenant = registry.servicer.add_tenant()
    good = [dispatch_request(tenant, f"good-{i}") for i in range(9)]
    unhashed = dispatch_request(
        tenant, "unhashed", user_data={"em": ["buyer@example.com"], "client_user_agent": "UA"}
    )
    no_value = dispatch_request(tenant, "no-value", custom_data={"currency": "BRL"})
    old = dispatch_request(tenant, "old", event_time=int(time.time()) - 8 * 86400)
    await publish(broker, *good, unhashed, no_value, old)
    await start_consumer(DISPATCHER_BATCH_DEADLINE_MS="300")

    found = await wait_states(db, tenant, 12, {"sent", "dead", "expired"})
    assert [found[r.event.event_id] for r in good] == ["sent"] * 9
    rows = {
        r["event_id"]: r
        for r in await db.fetch(
            "SELECT event_id, state, reason, detail FROM dispatches WHERE tenant_id = $1", tenant
        )
    }
    assert rows[unhashed.event.event_id]["reason"] == "invalid_event"
    assert "user_data.em[0] is not a SHA-256" in rows[unhashed.event.event_id]["detail"]
    assert rows[no_value.event.event_id]["reason"] == "invalid_event"
    assert "Purchase needs custom_data.value" in rows[no_value.event.event_id]["detail"]
    assert rows[old.event.event_id]["state"] == "expired"
    assert rows[old.event.event_id]["reason"] == "event_too_old"
    # Meta never saw them, and the good ones went in requests Meta accepted.
    seen = {c["event_id"] for c in meta.event_counts(pixel_id=PIXEL)}
    assert seen == {r.event.event_id for r in good}
    assert all(r["status"] == 200 for r in meta.requests(pixel_id=PIXEL))
    invalid = await db.fetch(
        "SELECT outcome, error_message FROM dispatch_attempts WHERE outcome = 'invalid'"
    )
    assert len(invalid) == 2


async def test_a_refused_batch_is_split_until_the_offenders_stand_alone(
    registry: Registry,
    meta: MetaSandboxClient,
    broker: AmqpClient,
    db: asyncpg.Pool,
    start_consumer: Start,
) -> None:
    tenant = registry.servicer.add_tenant()
    now = int(time.time())
    # Meta's clock runs ten minutes behind ours: events stamped "now" are in Meta's future and
    # refused (code 100), which our validation (on our clock) cannot foresee.
    meta.freeze_clock(now - 600)
    fine = [dispatch_request(tenant, f"fine-{i}", event_time=now - 3600) for i in range(30)]
    ahead = [dispatch_request(tenant, f"ahead-{i}", event_time=now) for i in (1, 2)]
    await publish(broker, *fine[:11], ahead[0], *fine[11:20], ahead[1], *fine[20:])
    await start_consumer(DISPATCHER_BATCH_MAX="32", DISPATCHER_BATCH_DEADLINE_MS="500")

    found = await wait_states(db, tenant, 32, {"sent", "dead"})
    assert [found[r.event.event_id] for r in fine] == ["sent"] * 30
    dead = await db.fetch(
        "SELECT event_id, reason, detail, last_code, last_http_status FROM dispatches"
        " WHERE tenant_id = $1 AND state = 'dead'",
        tenant,
    )
    assert {r["event_id"] for r in dead} == {r.event.event_id for r in ahead}
    assert {(r["reason"], r["last_code"], r["last_http_status"]) for r in dead} == {
        ("meta_rejected", 100, 400)
    }
    attempts = await db.fetch(
        "SELECT batch_id, attempt, outcome, event_count FROM dispatch_attempts"
        " WHERE tenant_id = $1 ORDER BY attempt",
        tenant,
    )
    assert len({a["batch_id"] for a in attempts}) == 1, "a split keeps its batch id"
    assert attempts[0]["event_count"] == 32 and attempts[0]["outcome"] == "permanent"
    assert sum(a["event_count"] for a in attempts if a["outcome"] == "sent") == 30
    assert [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1))
    assert {c["count"] for c in meta.event_counts(pixel_id=PIXEL)} == {1}
