"""The webhook lock on the provisioner's own API (the operator's `trackai provision` included):
no provisioning and no publish until ingestion holds a verified webhook from the tenant's gateway,
asked over real gRPC as the provisioner's own identity."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from trackai.provisioner.v1 import provisioner_service_pb2 as pb

from .conftest import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_provisioning_waits_for_a_verified_webhook(provisioning: Any, sandboxes: Any) -> None:
    async with provisioning() as prov:
        prov.ingestion.verified[prov.tenant_id] = 0
        with pytest.raises(grpc.aio.AioRpcError) as locked:
            await prov.provision()
        assert locked.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        details = locked.value.details() or ""
        assert "no verified webhook" in details
        assert f"/api/v1/webhooks/kiwify/{prov.tenant_id}" in details
        # Refused before the first provider call: nothing was created anywhere.
        assert sandboxes.cname_records() == [] and sandboxes.stape_containers() == []
        assert prov.ingestion.calls == 1

        # The operator's command says the same and exits non-zero.
        code, _, err = await run_cli(prov.port, "provision", "acme")
        assert code != 0 and "no verified webhook" in err

        # A wrong secret at the gateway is named.
        prov.ingestion.refused[prov.tenant_id] = ["kiwify_signature"]
        with pytest.raises(grpc.aio.AioRpcError) as mismatch:
            await prov.provision()
        assert "kiwify (kiwify_signature)" in (mismatch.value.details() or "")

        # Unknown is not verified: ingestion down keeps it locked, as UNAVAILABLE (retry).
        prov.ingestion.down = True
        with pytest.raises(grpc.aio.AioRpcError) as down:
            await prov.provision()
        assert down.value.code() == grpc.StatusCode.UNAVAILABLE
        assert sandboxes.cname_records() == []

        # The test webhook arrives: the same call provisions.
        prov.ingestion.down = False
        prov.ingestion.verified[prov.tenant_id] = 1
        messages = await prov.provision()
        assert messages[-1].run_status == pb.RUN_STATUS_AWAITING_APPROVAL, messages[-1].detail


async def test_publish_waits_for_a_verified_webhook(provisioning: Any, sandboxes: Any) -> None:
    async with provisioning() as prov:
        messages = await prov.provision()
        run_id = messages[-1].run_id
        await prov.stub.SendTestEvent(pb.SendTestEventRequest(run_id=run_id))
        # The run was provisioned while the lock was open; nothing verified remains (the
        # webhooks are older than ingestion's 30 days, say): publishing waits again.
        prov.ingestion.verified[prov.tenant_id] = 0
        publishes = sandboxes.calls(sandboxes.gtm, "POST", ":publish")
        with pytest.raises(grpc.aio.AioRpcError) as locked:
            await prov.stub.ApproveAndPublish(
                pb.ApproveAndPublishRequest(run_id=run_id, approved_by="ana@ops")
            )
        assert locked.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "no verified webhook" in (locked.value.details() or "")
        assert sandboxes.calls(sandboxes.gtm, "POST", ":publish") == publishes

        prov.ingestion.verified[prov.tenant_id] = 2
        published = await prov.stub.ApproveAndPublish(
            pb.ApproveAndPublishRequest(run_id=run_id, approved_by="ana@ops")
        )
        assert published.run_status == pb.RUN_STATUS_PUBLISHED
        assert sandboxes.calls(sandboxes.gtm, "POST", ":publish") > publishes
