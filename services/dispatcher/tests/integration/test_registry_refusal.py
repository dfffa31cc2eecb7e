"""A definitive refusal from the tenant registry (PERMISSION_DENIED, FAILED_PRECONDITION...) makes
the events dead with a reason that names it, instead of deferring them forever; an unreachable
registry still defers them."""

from __future__ import annotations

import asyncpg
import grpc
import pytest

from trackai_kit.amqp import AmqpClient
from trackai_sandbox.testing import MetaSandboxClient

from .conftest import Registry, Start, dispatch_request, publish, wait_states

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.FAILED_PRECONDITION]
)
async def test_registry_refusal_makes_the_events_dead_not_retried_forever(
    code: grpc.StatusCode,
    registry: Registry,
    meta: MetaSandboxClient,
    broker: AmqpClient,
    db: asyncpg.Pool,
    start_consumer: Start,
) -> None:
    tenant = registry.servicer.add_tenant()
    registry.servicer.refuse = code
    request = dispatch_request(tenant, f"refused-{code.name}")
    await publish(broker, request)
    await start_consumer()
    await wait_states(db, tenant, 1, {"dead"}, timeout_s=10)
    row = await db.fetchrow(
        "SELECT reason, detail FROM dispatches WHERE event_id = $1", request.event.event_id
    )
    assert row is not None
    assert row["reason"] == "no_destination"
    assert code.name in row["detail"]
    assert meta.event_counts(pixel_id="1234567890") == []
