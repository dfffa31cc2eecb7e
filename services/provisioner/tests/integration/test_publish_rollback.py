"""RollbackPublish against the GTM fake: publish v1, publish v2 from a second run, roll the
second back and v1 is live again in both containers; the refusals name their reason."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from trackai.common.v1 import events_pb2 as common_pb
from trackai.provisioner.v1 import provisioner_service_pb2 as pb

from .conftest import DEMO_META_TOKEN, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SECOND_PIXEL = "2234567890"


async def publish_latest_run(prov: Any) -> tuple[str, pb.ApproveAndPublishResponse]:
    messages = await prov.provision()
    assert messages[-1].run_status == pb.RUN_STATUS_AWAITING_APPROVAL, messages[-1].detail
    run_id = messages[-1].run_id
    await prov.stub.SendTestEvent(pb.SendTestEventRequest(run_id=run_id))
    published = await prov.stub.ApproveAndPublish(
        pb.ApproveAndPublishRequest(run_id=run_id, approved_by="ana@ops")
    )
    return run_id, published


def live_versions(sandboxes: Any) -> dict[str, str]:
    """Live version id per container name, read through the GTM API's ``versions:live``."""
    out: dict[str, str] = {}
    for container in sandboxes.gtm_containers():
        live = sandboxes.control(
            sandboxes.gtm,
            "GET",
            f"/tagmanager/v2/{container['path']}/versions:live",
            headers={"Authorization": "Bearer sandbox-access-token"},
        )
        out[container["name"]] = live["containerVersionId"]
    return out


async def test_rollback_republishes_the_versions_live_before(
    provisioning: Any, sandboxes: Any
) -> None:
    async with provisioning() as prov:
        first_run, first = await publish_latest_run(prov)
        v1 = live_versions(sandboxes)
        assert v1["trackai-acme-launch-web"] == first.published_version_id
        assert v1["trackai-acme-server"] == first.published_server_version_id

        # Nothing was live before the first publish: there is nothing to go back to.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await prov.stub.RollbackPublish(
                pb.RollbackPublishRequest(run_id=first_run, rolled_back_by="ana@ops")
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "nothing was live" in (refused.value.details() or "")

        # A new pixel changes both containers' templates: the second run makes v2 of each.
        sandboxes.control(
            sandboxes.meta,
            "POST",
            "/_sandbox/pixels",
            json={"pixel_id": SECOND_PIXEL, "tokens": [DEMO_META_TOKEN]},
        )
        await prov.registry_stub.SetMetaCredential(
            pb.SetMetaCredentialRequest(
                tenant_ref="acme", pixel_id=SECOND_PIXEL, access_token=DEMO_META_TOKEN
            )
        )
        second_run, second = await publish_latest_run(prov)
        assert second_run != first_run
        assert second.previous_version_id == first.published_version_id
        assert second.previous_server_version_id == first.published_server_version_id
        v2 = live_versions(sandboxes)
        assert (
            v2["trackai-acme-launch-web"]
            == second.published_version_id
            != v1["trackai-acme-launch-web"]
        )

        # A rollback needs a name.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await prov.stub.RollbackPublish(pb.RollbackPublishRequest(run_id=second_run))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "rolled_back_by" in (refused.value.details() or "")

        # The operator's command: `trackai provision rollback RUN --by NAME`.
        code, out, err = await run_cli(
            prov.port, "provision", "rollback", second_run, "--by", "bia@ops", "--json"
        )
        assert code == 0, err
        rolled = json.loads(out)
        assert rolled["run_status"] == "RUN_STATUS_PUBLISH_ROLLED_BACK"
        assert rolled["restored_version_id"] == first.published_version_id
        assert rolled["restored_server_version_id"] == first.published_server_version_id
        assert rolled["replaced_version_id"] == second.published_version_id
        assert live_versions(sandboxes) == v1
        run = (
            await prov.stub.GetProvisioningRun(pb.GetProvisioningRunRequest(run_id=second_run))
        ).run
        assert run.run_status == pb.RUN_STATUS_PUBLISH_ROLLED_BACK
        assert run.rolled_back_by == "bia@ops" and run.HasField("rollback_time")

        # Once rolled back, a second rollback is refused (the run is no longer published).
        code, out, err = await run_cli(
            prov.port, "provision", "rollback", second_run, "--by", "bia@ops"
        )
        assert code == 1
        assert "FAILED_PRECONDITION" in err and "publish_rolled_back" in err
        # Both publishes and the rollback went to the outbox for the console.
        bodies = await prov.pool.fetch(
            "SELECT body FROM provisioner.outbox WHERE message_type = $1 ORDER BY id",
            common_pb.StatusUpdate.DESCRIPTOR.full_name,
        )
    statuses = [common_pb.StatusUpdate.FromString(b["body"]) for b in bodies]
    published = [s for s in statuses if s.status in ("published", "publish_rolled_back")]
    assert [(s.entity_id, s.status) for s in published] == [
        (first_run, "published"),
        (second_run, "published"),
        (second_run, "publish_rolled_back"),
    ]
    assert published[-1].detail.startswith("publish rolled back by bia@ops: live again server")
