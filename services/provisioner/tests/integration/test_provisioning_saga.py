"""The provisioning saga over real gRPC and PostgreSQL against the provider fakes (Meta,
Cloudflare, Stape, GTM driven through the official SDKs): full run, re-run, crash and resume,
Stape timeout with rollback, and the review gate before publishing."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import pytest

from trackai.provisioner.v1 import provisioner_service_pb2 as pb
from trackai_provisioner.domain.provisioning import STEPS as PROVISIONING_STEPS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

STEPS = list(PROVISIONING_STEPS)


def final_status(step: str, messages: list[pb.ProvisionTenantResponse]) -> int:
    return [m for m in messages if m.step == step][-1].step_status


async def test_full_run_creates_everything_and_stops_before_publishing(
    provisioning: Any, sandboxes: Any
) -> None:
    async with provisioning() as prov:
        messages = await prov.provision()
        stored = await prov.pool.fetchval(
            "SELECT string_agg(r::text || s::text, '') FROM provisioner.provisioning_runs r "
            "JOIN provisioner.provisioning_steps s ON s.run_id = r.id"
        )
    # Step summaries never hold secrets: not the Meta token, not the server container config.
    assert "sandbox-token" not in stored
    assert "auth=" not in stored and "containerConfig" not in stored
    last = messages[-1]
    assert last.run_status == pb.RUN_STATUS_AWAITING_APPROVAL, "\n".join(
        m.detail for m in messages[-4:]
    )
    assert [m.step for m in messages if m.step_status == pb.STEP_STATUS_SUCCEEDED][:-1] == STEPS
    result = last.result
    assert result.custom_domain == "acme.track.trackai.test"
    assert result.tagging_server_url == "https://acme.track.trackai.test"
    assert result.stape_container_id and result.dns_record_id and result.gtm_version_id
    assert {s.platform for s in result.snippets} >= {"html", "wordpress", "kiwify_thank_you"}

    # What the providers now hold.
    [record] = sandboxes.cname_records()
    [container] = sandboxes.stape_containers()
    assert record["name"] == "acme.track.trackai.test"
    assert record["proxied"] is False
    assert record["content"] == f"{container['identifier']}.sa.stape.io"
    assert record["id"] == result.dns_record_id
    assert container["identifier"] == result.stape_container_id
    names = sorted(c["name"] for c in sandboxes.gtm_containers())
    assert names == ["trackai-acme-launch-web", "trackai-acme-server"]
    # Versions exist but nothing is live: publishing waits for review.
    assert all(not c.get("liveVersionId") for c in sandboxes.gtm_containers())


async def test_rerun_reuses_everything_and_creates_nothing(
    provisioning: Any, sandboxes: Any
) -> None:
    async with provisioning() as prov:
        first = await prov.provision()
        assert first[-1].run_status == pb.RUN_STATUS_AWAITING_APPROVAL
        posts = {
            box: sandboxes.calls(box, "POST")
            for box in (sandboxes.cloudflare, sandboxes.stape, sandboxes.gtm)
        }
        second = await prov.provision()
    assert second[-1].run_status == pb.RUN_STATUS_AWAITING_APPROVAL
    assert second[-1].run_id != first[-1].run_id
    reused = [s for s in STEPS if final_status(s, second) == pb.STEP_STATUS_SKIPPED]
    # Everything that creates something found it; only checks and snippets run again.
    assert set(STEPS) - set(reused) == {
        "validate_meta",
        "stape_running",
        "stape_domain_validation",
        "snippets",
    }
    # No create call reached a provider (revalidation is Stape's only POST, and it was not
    # needed: the domain was already verified).
    for box, before in posts.items():
        assert sandboxes.calls(box, "POST") == before, box
    assert second[-1].result.gtm_version_id == first[-1].result.gtm_version_id
    assert len(sandboxes.cname_records()) == 1
    assert len(sandboxes.stape_containers()) == 1
    assert len(sandboxes.gtm_containers()) == 2


async def test_stape_timeout_rolls_back_everything_this_run_created(
    provisioning: Any, sandboxes: Any
) -> None:
    sandboxes.control(sandboxes.stape, "POST", "/_sandbox/behaviour", json={"never_running": True})
    async with provisioning(PROVISIONING_STAPE_TIMEOUT_S=1) as prov:
        messages = await prov.provision()
    last = messages[-1]
    assert last.run_status == pb.RUN_STATUS_ROLLED_BACK
    assert "not running after 1 s" in last.detail
    assert "Rolled back: Stape container" in last.detail
    assert "GTM server container" in last.detail
    rolled = {m.step for m in messages if m.step_status == pb.STEP_STATUS_ROLLED_BACK} - {"run"}
    assert rolled == {"gtm_server_container", "stape_container"}
    # Nothing is left at the providers.
    assert sandboxes.stape_containers() == []
    assert sandboxes.gtm_containers() == []
    assert sandboxes.cname_records() == []


async def test_rollback_keeps_what_an_earlier_run_created(
    provisioning: Any, sandboxes: Any
) -> None:
    async with provisioning(PROVISIONING_STAPE_TIMEOUT_S=1) as prov:
        # An operator-made GTM server container with our name already exists: reused, not ours.
        await prov.saga._p.gtm.create_container("trackai-acme-server", "server")
        sandboxes.control(
            sandboxes.stape, "POST", "/_sandbox/behaviour", json={"never_running": True}
        )
        messages = await prov.provision()
    assert messages[-1].run_status == pb.RUN_STATUS_ROLLED_BACK
    assert [c["name"] for c in sandboxes.gtm_containers()] == ["trackai-acme-server"]
    assert sandboxes.stape_containers() == []


async def test_a_failure_between_steps_resumes_without_duplicates(
    provisioning: Any, sandboxes: Any
) -> None:
    # The domain is added at Stape, then the answer is lost (a 502 after the call took effect).
    sandboxes.control(
        sandboxes.stape,
        "POST",
        "/_sandbox/faults",
        json={"kind": "http_502", "method": "POST", "path": "/domains", "after": True, "count": 1},
    )
    async with provisioning() as prov:
        first = await prov.provision()
        assert first[-1].run_status == pb.RUN_STATUS_FAILED
        assert final_status("stape_domain", first) == pb.STEP_STATUS_FAILED
        assert "re-run" in first[-1].detail
        second = await prov.provision()
    assert second[-1].run_status == pb.RUN_STATUS_AWAITING_APPROVAL
    assert second[-1].run_id == first[-1].run_id  # the same run, resumed
    assert second[0].detail.startswith("resuming run")
    done_earlier = [m.step for m in second if m.detail.startswith("done earlier")]
    assert done_earlier == STEPS[:4]
    [container] = sandboxes.stape_containers()
    domains = sandboxes.control(
        sandboxes.stape,
        "GET",
        f"/api/v2/containers/{container['identifier']}/domains",
        headers={"X-AUTH-TOKEN": "sandbox-stape-key"},
    )["body"]["items"]
    assert len(domains) == 1
    assert len(sandboxes.gtm_containers()) == 2


async def test_publish_needs_approval_and_a_successful_test_event(
    provisioning: Any, sandboxes: Any
) -> None:
    async with provisioning() as prov:
        messages = await prov.provision()
        run_id = messages[-1].run_id
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await prov.stub.ApproveAndPublish(pb.ApproveAndPublishRequest(run_id=run_id))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "human approval" in (refused.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await prov.stub.ApproveAndPublish(
                pb.ApproveAndPublishRequest(run_id=run_id, approved_by="ana@ops")
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "no successful test event" in (refused.value.details() or "")
        assert all(not c.get("liveVersionId") for c in sandboxes.gtm_containers())

        sent = await prov.stub.SendTestEvent(pb.SendTestEventRequest(run_id=run_id))
        assert sent.events_received == 1
        assert sent.test_event_code == "TEST12345"
        with httpx.Client(base_url=sandboxes.meta) as http:
            events = http.get("/_sandbox/events", params={"event_id": sent.event_id}).json()
        assert events["total"] == 1
        assert events["data"][0]["test_event_code"] == "TEST12345"

        published = await prov.stub.ApproveAndPublish(
            pb.ApproveAndPublishRequest(run_id=run_id, approved_by="ana@ops", note="ok")
        )
        assert published.run_status == pb.RUN_STATUS_PUBLISHED
        assert published.published_version_id == messages[-1].result.gtm_version_id
        assert published.previous_version_id == ""  # first publish: nothing was live
        run = (await prov.stub.GetProvisioningRun(pb.GetProvisioningRunRequest(run_id=run_id))).run
        assert run.run_status == pb.RUN_STATUS_PUBLISHED
        assert run.approved_by == "ana@ops"
        assert run.test_event_id == sent.event_id
