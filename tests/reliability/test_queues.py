"""The queues themselves (issue 14, scenarios 3 and 15): poison messages on every queue of the
pipeline, and a quorum queue's delivery limit reached. Each ends in the ledger's accounting, which
counts what RabbitMQ dead-lettered (``capi-dispatch.dlq``) as visibly dead."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest

from trackai.matcher.v1 import events_pb2 as matcher_pb
from trackai_kit.topology import (
    CAPI_DISPATCH,
    DELIVERY_LIMIT,
    INGEST_EVENTS,
    INGEST_RETRY_DELAYS_MS,
    dlq_name,
    retry_queue_name,
)
from trackai_testing.plugin import run_sync

from .accounting import Account, assert_clean
from .conftest import Pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


def _orders(prefix: str, count: int) -> list[str]:
    run = uuid.uuid4().hex[:6]
    return [f"{prefix}-{run}-{n}" for n in range(count)]


def _trackai(pipeline: Pipeline, *args: str) -> Any:
    trackai = Path(sys.executable).parent / "trackai"
    done = subprocess.run(
        [str(trackai), *args, "--json"],
        env=pipeline.stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _wait(what: str, check: Any, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(0.3)


def _settled(pipeline: Pipeline) -> Any:
    def done(account: Account) -> bool:
        return account.settled and len(pipeline.ledger.acknowledged) == len(
            account.delivered
        ) + len(account.dead)

    return done


async def _publish(url: str, queue: str, body: bytes, **properties: Any) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        message = aio_pika.Message(
            body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **properties
        )
        await channel.default_exchange.publish(message, routing_key=queue)
    finally:
        await connection.close()


#: Bodies no consumer can ever process: not protobuf at all, a truncated field, JSON.
GARBAGE = [b"\xff\xff\xff\xff", b"\x0a\xff", b'{"order_id": "poison"}']


def _bad_dispatch_request(tenant_id: str) -> bytes:
    """A well-formed DispatchRequest the dispatcher must refuse (event_id is not ours)."""
    request = matcher_pb.DispatchRequest(tenant_id=tenant_id, pixel_id="123")
    request.event.event_id = "not-an-event-id"
    request.event.event_name = "Purchase"
    return request.SerializeToString()


def test_poison_on_every_queue_is_dead_lettered_and_the_stream_flows(pipeline: Pipeline) -> None:
    """Undecodable and invalid messages on ``ingest-events``, ``capi-dispatch`` and each one's
    delay queue, between real sales: each poison message ends in its work queue's DLQ, listed by
    `trackai dlq list --queue`, and every sale reaches Meta once."""
    url, prefix = pipeline.stack.env["AMQP_URL"], pipeline.stack.env["AMQP_PREFIX"]
    ladder = pipeline.settings["dispatcher-consume"]["DISPATCHER_RETRY_DELAYS_MS"].split(",")
    targets = {
        INGEST_EVENTS: [INGEST_EVENTS, retry_queue_name(INGEST_EVENTS, INGEST_RETRY_DELAYS_MS[0])],
        CAPI_DISPATCH: [CAPI_DISPATCH, retry_queue_name(CAPI_DISPATCH, int(ladder[0]))],
    }
    poisoned = {INGEST_EVENTS: 0, CAPI_DISPATCH: 0}
    with httpx.Client(timeout=30) as http:
        for round_, orders in enumerate([_orders("before", 5), _orders("between", 5)]):
            for order in orders:
                assert pipeline.post(http, pipeline.sale(order)).status_code == 200
            if round_:
                break
            for work, queues in targets.items():
                for queue in queues:
                    for body in GARBAGE:
                        run_sync(_publish(url, prefix + queue, body, message_id=str(uuid.uuid4())))
                        poisoned[work] += 1
            bad = _bad_dispatch_request(pipeline.tenant_id)
            run_sync(_publish(url, prefix + CAPI_DISPATCH, bad, message_id=str(uuid.uuid4())))
            poisoned[CAPI_DISPATCH] += 1
        after = _orders("after", 5)
        for order in after:
            assert pipeline.post(http, pipeline.sale(order)).status_code == 200

    def all_dead_lettered() -> bool:
        depths = pipeline.queue_depths()
        return all(depths.get(prefix + dlq_name(q), 0) == n for q, n in poisoned.items())

    _wait(f"{poisoned} poison messages dead-lettered", all_dead_lettered)
    for queue, count in poisoned.items():
        listed = _trackai(pipeline, "dlq", "list", "--queue", queue)
        assert len(listed) == count, listed
        assert {entry["reason"] for entry in listed} == {"rejected"}, listed
    account = pipeline.ledger.settle(pipeline.meta, 120, until=_settled(pipeline))
    assert_clean(account)
    assert len(account.delivered) == 15


async def _crash_until_dead_lettered(url: str, queue: str, expected: int) -> int:
    """Act as a consumer that dies holding the messages (its channel closes without an ack),
    again and again, until the quorum queue has dead-lettered all ``expected`` of them; the
    highest ``x-delivery-count`` seen (the redeliveries the broker allowed)."""
    connection = await aio_pika.connect(url)
    highest = 0
    deadline = time.monotonic() + 120
    try:
        while True:
            channel = await connection.channel()
            dlq = await channel.declare_queue(dlq_name(queue), passive=True)
            if dlq.declaration_result.message_count == expected:
                await channel.close()
                return highest
            if time.monotonic() > deadline:
                raise AssertionError(f"not dead-lettered; highest delivery count {highest}")
            source = await channel.declare_queue(queue, passive=True)
            while (message := await source.get(no_ack=False, fail=False)) is not None:
                count = (message.headers or {}).get("x-delivery-count", 0)
                highest = max(highest, count if isinstance(count, int) else 0)
            await channel.close()  # dies holding them: each is returned, its delivery counted
            await asyncio.sleep(0.05)
    finally:
        await connection.close()


def test_delivery_limit_reached_dead_letters_to_an_accounted_replayable_dlq(
    pipeline: Pipeline,
) -> None:
    """A long outage in which every consumer of ``capi-dispatch`` dies holding its messages:
    after the explicit delivery limit the quorum queue dead-letters them to ``capi-dispatch.dlq``
    (nothing dropped), the ledger sees them dead, and `trackai dlq replay --queue` brings each to
    Meta once."""
    url, prefix = pipeline.stack.env["AMQP_URL"], pipeline.stack.env["AMQP_PREFIX"]
    assert pipeline.stop("dispatcher", "consume", kill=False) == 0
    orders = _orders("limit", 5)
    with httpx.Client(timeout=30) as http:
        for order in orders:
            assert pipeline.post(http, pipeline.sale(order)).status_code == 200
    _wait(
        "the matcher published every sale",
        lambda: pipeline.queue_depths().get(prefix + CAPI_DISPATCH) == len(orders),
    )
    highest = run_sync(_crash_until_dead_lettered(url, prefix + CAPI_DISPATCH, len(orders)))
    print(f"\ndead-lettered after x-delivery-count {highest} (limit {DELIVERY_LIMIT})")
    # The explicit limit, not RabbitMQ's default (20 on 4.x): a long outage with crashing
    # consumers gets DELIVERY_LIMIT redeliveries before anything is dead-lettered.
    assert highest == DELIVERY_LIMIT, f"dead-lettered after {highest} redeliveries"
    account = pipeline.ledger.account(pipeline.meta)
    assert_clean(account, dead_allowed=True)
    assert set(account.dead.values()) == {"dead-lettered: delivery_limit"}, account.dead
    assert len(account.dead) == len(orders)

    listed = _trackai(pipeline, "dlq", "list", "--queue", CAPI_DISPATCH)
    assert {entry["reason"] for entry in listed} == {"delivery_limit"}, listed
    pipeline.start("dispatcher", "consume")
    for _ in range(2):  # replayed twice (two operators): still once at Meta
        _trackai(pipeline, "dlq", "replay", "--queue", CAPI_DISPATCH, "--all",
                 "--by", "reliability-suite")  # fmt: skip
    account = pipeline.ledger.settle(
        pipeline.meta, 120, until=lambda a: len(a.delivered) == len(orders)
    )
    # A later sale at Meta means every replayed copy has been handled.
    with httpx.Client(timeout=30) as http:
        (later,) = _orders("later", 1)
        assert pipeline.post(http, pipeline.sale(later)).status_code == 200
    account = pipeline.ledger.settle(pipeline.meta, 120, until=_settled(pipeline))
    assert_clean(account)
    assert len(account.delivered) == len(orders) + 1
    assert pipeline.queue_depths().get(prefix + dlq_name(CAPI_DISPATCH)) == 0
