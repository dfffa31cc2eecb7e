"""Provisioning progress leaves through the outbox: each recorded step change is a
``trackai.common.v1.StatusUpdate`` on the ``trackai.status`` topic exchange (routing key
``provisioning.<tenant_id>``), published by the kit relay to a queue a console would bind."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest

from trackai.common.v1 import events_pb2 as common_pb
from trackai.provisioner.v1 import provisioner_service_pb2 as pb
from trackai_kit.amqp import AmqpClient
from trackai_kit.outbox import OutboxRelay
from trackai_kit.settings import AmqpSettings
from trackai_provisioner.bootstrap import SCHEMA, TOPOLOGY

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@contextlib.asynccontextmanager
async def relay_running(pool: Any, amqp: AmqpClient) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(
        OutboxRelay(pool, amqp, schema=SCHEMA, poll_interval_s=0.1).run(stop)
    )
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def drain(queue: aio_pika.abc.AbstractQueue, until: Any) -> list[aio_pika.IncomingMessage]:
    received: list[aio_pika.IncomingMessage] = []
    async with asyncio.timeout(20):
        while not until(received):
            message = await queue.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            received.append(message)
    return received


async def test_run_steps_are_published_as_status_updates(
    provisioning: Any, amqp_url: str, amqp_prefix: str
) -> None:
    amqp = AmqpClient(AmqpSettings(url=amqp_url, prefix=amqp_prefix), connection_name="prov-test")
    await amqp.declare(TOPOLOGY)
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{amqp_prefix}console-status", exclusive=True)
        async with provisioning() as prov:
            await queue.bind(f"{amqp_prefix}trackai.status", f"*.{prov.tenant_id}")
            async with relay_running(prov.pool, amqp):
                messages = await prov.provision()
                run_id = messages[-1].run_id

                def finished(got: list[aio_pika.IncomingMessage]) -> bool:
                    return any(b"awaiting_approval" in m.body for m in got)

                received = await drain(queue, finished)
            pending = await prov.pool.fetchval(
                "SELECT count(*) FROM provisioner.outbox WHERE published_at IS NULL"
            )
    finally:
        await connection.close()
        await amqp.close()

    assert messages[-1].run_status == pb.RUN_STATUS_AWAITING_APPROVAL
    assert pending == 0
    updates = []
    for message in received:
        assert message.type == common_pb.StatusUpdate.DESCRIPTOR.full_name
        assert message.routing_key == f"provisioning.{prov.tenant_id}"
        assert message.message_id
        update = common_pb.StatusUpdate()
        update.ParseFromString(message.body)
        updates.append(update)
    assert {u.entity for u in updates} == {common_pb.STATUS_ENTITY_PROVISIONING}
    assert {u.entity_id for u in updates} == {run_id}
    assert {u.tenant_id for u in updates} == {prov.tenant_id}
    # Every step shows up as started and as finished, in the saga's order; the run's status rides
    # in `status`, the step's outcome in `detail`.
    succeeded = [u.detail.split(" ", 1)[0] for u in updates if " succeeded: " in u.detail]
    assert succeeded == [m.step for m in messages if m.step_status == pb.STEP_STATUS_SUCCEEDED][:-1]
    assert len(succeeded) == 12
    assert sum(" running: attempt 1" in u.detail for u in updates) == 12
    assert updates[0].status == "running" and updates[0].detail.startswith("new run for acme")
    assert updates[-1].status == "awaiting_approval"
    assert all(u.status == "running" for u in updates[:-1])
    assert all(u.HasField("time") for u in updates)
    # Nothing secret travels: not the Meta token, not the server container config.
    assert not any("sandbox-token" in u.detail or "containerConfig" in u.detail for u in updates)


async def test_a_rolled_back_run_says_so_and_its_updates_wait_in_the_outbox_for_a_relay(
    provisioning: Any, sandboxes: Any, amqp_url: str, amqp_prefix: str
) -> None:
    """Updates are written with the step changes even with no relay running; they go out
    later, in order, once a relay can reach the broker."""
    sandboxes.control(sandboxes.stape, "POST", "/_sandbox/behaviour", json={"never_running": True})
    async with provisioning(PROVISIONING_STAPE_TIMEOUT_S=0.5) as prov:
        messages = await prov.provision()
        assert messages[-1].run_status == pb.RUN_STATUS_ROLLED_BACK
        stored = await prov.pool.fetch(
            "SELECT body FROM provisioner.outbox WHERE published_at IS NULL ORDER BY id"
        )
        statuses = [common_pb.StatusUpdate.FromString(r["body"]) for r in stored]
        assert statuses[-1].status == "rolled_back"
        assert "Rolled back:" in statuses[-1].detail
        assert any(s.detail.startswith("stape_running failed: ") for s in statuses)
        assert any(" rolled_back: rolled back" in s.detail for s in statuses)

        amqp = AmqpClient(AmqpSettings(url=amqp_url, prefix=amqp_prefix), connection_name="t")
        await amqp.declare(TOPOLOGY)
        connection = await aio_pika.connect(amqp_url)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(f"{amqp_prefix}late-reader", exclusive=True)
            await queue.bind(f"{amqp_prefix}trackai.status", "provisioning.#")
            async with relay_running(prov.pool, amqp):
                received = await drain(queue, lambda got: len(got) >= len(statuses))
        finally:
            await connection.close()
            await amqp.close()
    assert [common_pb.StatusUpdate.FromString(m.body) for m in received] == statuses
