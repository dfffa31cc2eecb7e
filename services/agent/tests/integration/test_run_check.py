"""RunCheck over AgentService's gRPC API: one read-only tool for the console's setup wizard,
outside any conversation (nothing stored), with the same pt-BR verdicts the chat gives."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from trackai.agent.v1 import agent_service_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _since(moment: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


async def test_gateway_check_gives_the_exact_url_until_a_webhook_arrives(make_agent: Any) -> None:
    async with make_agent() as agent:
        backend = agent.wired.backend
        started = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        request = pb.RunCheckRequest(
            tenant_id=backend.tenant_id,
            funnel_slug="launch",
            tool="validate_gateway_webhook",
            setup_start_time=_since(started),
        )
        waiting = await agent.stub.RunCheck(request)
        details = json.loads(waiting.details_json)
        assert waiting.status == "error"
        assert details["blocks_setup"] is True
        url = details["webhook_urls"]["kiwify"]
        assert url.endswith(f"/api/v1/webhooks/kiwify/{backend.tenant_id}")
        assert url in waiting.action

        backend.webhooks = [("kiwify", dt.datetime.now(dt.UTC))]
        arrived = await agent.stub.RunCheck(request)
        assert arrived.status == "ok", arrived.message
        assert json.loads(arrived.details_json)["blocks_setup"] is False
        # Nothing was stored: RunCheck is not a conversation.
        assert await agent.pool.fetchval("SELECT count(*) FROM agent.sessions") == 0


async def test_meta_check_and_refused_tools(make_agent: Any) -> None:
    async with make_agent() as agent:
        tenant = agent.wired.backend.tenant_id
        meta = await agent.stub.RunCheck(
            pb.RunCheckRequest(tenant_id=tenant, funnel_slug="launch", tool="validate_meta_token")
        )
        assert meta.status == "ok", meta.message
        assert "não expira" in meta.message
        for tool, arguments in (("send_test_capi_event", ""), ("validate_meta_token", "[1]")):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await agent.stub.RunCheck(
                    pb.RunCheckRequest(tenant_id=tenant, tool=tool, arguments_json=arguments)
                )
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
