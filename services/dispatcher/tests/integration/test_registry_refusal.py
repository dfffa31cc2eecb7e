"""A definitive refusal from the tenant registry (PERMISSION_DENIED, FAILED_PRECONDITION...) makes
the events dead with a reason that names it, instead of deferring them forever; an unreachable
registry still defers them."""

from __future__ import annotations

import asyncpg
import grpc
import pytest

from trackai_kit.amqp import AmqpClient
from trackai_sandbox.testing import MetaSandboxClient

from .conftest import PIXEL, Registry, Start, dispatch_request, publish, wait_states

pytestmark = pytest.mark.integration
OTHER_PIXEL = "2222222222"


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


async def test_undecryptable_token_kills_only_the_events_that_need_it(
    registry: Registry,
    meta: MetaSandboxClient,
    broker: AmqpClient,
    db: asyncpg.Pool,
    start_consumer: Start,
) -> None:
    tenant = registry.servicer.add_tenant(pixel=PIXEL, funnels={"f-ok": ""})
    # The provisioner cannot decrypt the destination of OTHER_PIXEL and says so, definitively
    # (as its GetMetaDestination does); the tenant's other destination still works.
    registry.servicer.broken[(tenant, OTHER_PIXEL)] = (
        "the Meta credential of the tenant cannot be decrypted by the provisioner (credential "
        "sealed with key 'k0', which is not in TRACKAI_ENCRYPTION_KEYS); set it again"
    )
    stuck = dispatch_request(tenant, "broken-token", pixel=OTHER_PIXEL)
    fine = dispatch_request(tenant, "working-funnel", funnel_id="f-ok")
    await publish(broker, stuck, fine)
    await start_consumer()
    found = await wait_states(db, tenant, 2, {"dead", "sent"}, timeout_s=10)
    assert found == {stuck.event.event_id: "dead", fine.event.event_id: "sent"}
    detail = await db.fetchval(
        "SELECT detail FROM dispatches WHERE event_id = $1", stuck.event.event_id
    )
    assert "Meta credential of the tenant cannot be decrypted" in detail
    assert "'k0'" in detail
