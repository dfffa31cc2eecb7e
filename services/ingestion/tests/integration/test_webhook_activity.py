"""GetWebhookActivity counts a tenant's authenticated webhooks per gateway and outcome since a
moment (a gateway panel's test payload counts), and reports which credential refused requests
did not match."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

import grpc
import pytest

from trackai.ingestion.v1 import ingestion_service_pb2 as ing
from trackai.ingestion.v1 import ingestion_service_pb2_grpc as ing_grpc
from trackai_ingestion.bootstrap import INGESTION_SERVICE
from trackai_ingestion.entrypoints.grpc_access import POLICY
from trackai_kit.grpc import client_channel, start_grpc_server
from trackai_kit.settings import GrpcSettings, local_dev_callers, local_dev_token

from ..conftest import fixture_bytes
from .conftest import App, Registry
from .test_webhooks_api import post, post_signed

pytestmark = pytest.mark.integration


async def test_activity_per_gateway_since_a_moment(app: App, registry: Registry) -> None:
    tenant, other = registry.add_tenant(), registry.add_tenant()
    before = datetime.now(UTC) - timedelta(seconds=1)
    assert (await post_signed(app, "kiwify", tenant, fixture_bytes("kiwify-3.json"))).is_success
    assert (await post_signed(app, "kiwify", tenant, fixture_bytes("kiwify-1.json"))).is_success
    assert (await post_signed(app, "hotmart", tenant, fixture_bytes("hotmart-3.json"))).is_success
    refused = await post(
        app, "hotmart", tenant, fixture_bytes("hotmart-3.json"), headers={"X-HOTMART-HOTTOK": "x"}
    )
    assert refused.status_code == 401
    assert (await post_signed(app, "kiwify", other, fixture_bytes("kiwify-3.json"))).is_success

    server = await start_grpc_server(
        GrpcSettings(port=0, callers=local_dev_callers()),
        partial(ing_grpc.add_IngestionServiceServicer_to_server, app.components.servicer),
        [INGESTION_SERVICE],
        POLICY,
    )
    # The setup agent is who asks.
    channel = client_channel(f"127.0.0.1:{server.port}", local_dev_token("agent"))
    stub = ing_grpc.IngestionServiceStub(channel)
    try:
        since = ing.GetWebhookActivityRequest(tenant_id=tenant)
        since.since_time.FromDatetime(before)
        answer = await stub.GetWebhookActivity(since)
        later = ing.GetWebhookActivityRequest(tenant_id=tenant)
        later.since_time.FromDatetime(datetime.now(UTC) + timedelta(minutes=1))
        empty = await stub.GetWebhookActivity(later)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetWebhookActivity(ing.GetWebhookActivityRequest(tenant_id=tenant))
    finally:
        await channel.close()
        await server.stop(0)
    activity = {a.gateway: (a.received, dict(a.by_outcome)) for a in answer.gateways}
    assert activity == {
        "hotmart": (1, {"accepted": 1}),
        "kiwify": (2, {"accepted": 1, "test": 1}),
    }
    assert all(a.last_received_time.ToDatetime(tzinfo=UTC) >= before for a in answer.gateways)
    assert [(r.gateway, r.credential, r.count) for r in answer.refused] == [
        ("hotmart", "hotmart_hottok", 1)
    ]
    assert answer.refused[0].last_time.ToDatetime(tzinfo=UTC) >= before
    assert list(empty.gateways) == [] and list(empty.refused) == []
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
