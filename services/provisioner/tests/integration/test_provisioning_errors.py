"""Failures an operator fixes outside Track AI: each stops the run as FAILED with the cause and the
fix in the last message, and a re-run after the fix resumes."""

from __future__ import annotations

from typing import Any

import cloudflare
import pytest

from trackai.provisioner.v1 import provisioner_service_pb2 as pb
from trackai_provisioner.adapters.gtm import GtmApi, gtm_credentials

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _failure(messages: list[pb.ProvisionTenantResponse]) -> tuple[str, str]:
    failed = [m for m in messages if m.step_status == pb.STEP_STATUS_FAILED and m.step != "run"]
    assert messages[-1].run_status == pb.RUN_STATUS_FAILED
    return failed[-1].step, failed[-1].detail


async def test_wrong_cloudflare_zone(provisioning: Any) -> None:
    async with provisioning(CLOUDFLARE_ZONE_ID="0" * 32) as prov:
        step, detail = _failure(await prov.provision())
    assert step == "cloudflare_cname"
    assert "does not know zone" in detail and "CLOUDFLARE_ZONE_ID" in detail


async def test_wrong_cloudflare_token(provisioning: Any) -> None:
    async with provisioning(CLOUDFLARE_API_TOKEN="x" * 40) as prov:
        step, detail = _failure(await prov.provision())
    assert step == "cloudflare_cname"
    assert "refused CLOUDFLARE_API_TOKEN" in detail and "DNS → Edit" in detail


async def test_stape_key_from_the_other_region(provisioning: Any) -> None:
    async with provisioning(STAPE_API_KEY="sandbox-stape-eu-key") as prov:
        step, detail = _failure(await prov.provision())
    assert step == "stape_container"
    assert "other region" in detail and "api.app.eu.stape.io" in detail


async def test_gtm_quota_exhausted(provisioning: Any, sandboxes: Any) -> None:
    sandboxes.control(sandboxes.gtm, "POST", "/_sandbox/quota", json={"qps": 0.01})
    async with provisioning() as prov:
        prov.saga._p.gtm._api = None  # built lazily: give it a short back-off for the test
        prov.saga._p.gtm._api = GtmApi(
            sandboxes.gtm,
            "6000000001",
            gtm_credentials("token"),
            requests_per_second=1000,
            max_attempts=2,
            backoff_s=0.05,
        )
        step, detail = _failure(await prov.provision())
    assert step == "gtm_server_container"
    assert "GTM quota exhausted" in detail and "re-run" in detail


async def test_domain_already_pointing_elsewhere(provisioning: Any, sandboxes: Any) -> None:
    client = cloudflare.Cloudflare(
        api_token="sandbox-cloudflare-token0000000000000000",
        base_url=f"{sandboxes.cloudflare}/client/v4",
    )
    client.dns.records.create(
        zone_id="023e105f4ecef8ad9ca31a8372d0c353",
        type="CNAME",
        name="acme.track.trackai.test",
        content="old-host.example.net",
        ttl=1,
        proxied=False,
    )
    async with provisioning() as prov:
        step, detail = _failure(await prov.provision())
    assert step == "cloudflare_cname"
    assert "already points elsewhere" in detail and "old-host.example.net" in detail
    [record] = sandboxes.cname_records()
    assert record["content"] == "old-host.example.net"  # never overwritten
