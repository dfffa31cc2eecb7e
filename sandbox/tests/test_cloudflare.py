"""The Cloudflare fake, driven through Cloudflare's official Python SDK over a real HTTP server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from trackai_sandbox.cloudflare import DEMO_TOKEN, DEMO_ZONE_ID, CloudflareFakeSettings, build_app
from trackai_sandbox.server import BackgroundServer
from trackai_sandbox.settings import SandboxSettings

cloudflare = pytest.importorskip("cloudflare")

NAME = "acme.track.trackai.test"
TARGET = "abcdefg.eu.stape.io"
OTHER_ZONE = "11111111111111111111111111111111"
SCOPED_TOKEN = "scoped-token-for-the-other-zone".ljust(40, "0")


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(build_app(SandboxSettings(), CloudflareFakeSettings())) as running:
        yield running


@pytest.fixture
def control(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        http.post("/_sandbox/reset").raise_for_status()
        yield http


def sdk(server: BackgroundServer, token: str = DEMO_TOKEN, **options: Any) -> Any:
    options.setdefault("max_retries", 0)
    return cloudflare.Cloudflare(
        api_token=token, base_url=f"{server.base_url}/client/v4", **options
    )


def create_cname(client: Any, name: str = NAME, content: str = TARGET, **fields: Any) -> Any:
    return client.dns.records.create(
        zone_id=DEMO_ZONE_ID, type="CNAME", name=name, content=content, ttl=1, **fields
    )


def test_create_keeps_proxied_ttl_and_comment_and_lookup_by_exact_name(
    server: BackgroundServer, control: httpx.Client
) -> None:
    client = sdk(server)
    record = create_cname(client, proxied=False, comment="trackai tenant acme")
    assert (record.type, record.name, record.content) == ("CNAME", NAME, TARGET)
    assert (record.proxied, record.ttl, record.comment) == (False, 1, "trackai tenant acme")
    assert len(record.id) == 32
    create_cname(client, name="other.track.trackai.test")

    found = list(client.dns.records.list(zone_id=DEMO_ZONE_ID, name={"exact": NAME}, type="CNAME"))
    assert [r.id for r in found] == [record.id]
    assert (
        list(client.dns.records.list(zone_id=DEMO_ZONE_ID, name={"exact": "x.trackai.test"})) == []
    )
    fetched = client.dns.records.get(record.id, zone_id=DEMO_ZONE_ID)
    assert fetched.comment == "trackai tenant acme"


def test_list_pages_until_an_empty_page(server: BackgroundServer, control: httpx.Client) -> None:
    client = sdk(server)
    for index in range(12):
        client.dns.records.create(
            zone_id=DEMO_ZONE_ID, type="TXT", name=f"t{index}", content=f"v={index}", ttl=1
        )
    first = client.dns.records.list(zone_id=DEMO_ZONE_ID, per_page=5)
    assert first.result_info.total_count == 12
    assert first.result_info.total_pages == 3
    assert len(first.result) == 5
    # The SDK's iterator asks page 2, 3, then 4 (empty) before it stops.
    names = [r.name for r in client.dns.records.list(zone_id=DEMO_ZONE_ID, per_page=5)]
    assert sorted(names) == sorted(f"t{i}.trackai.test" for i in range(12))
    pages = [
        c["query"]
        for c in control.get("/_sandbox/requests", params={"method": "GET"}).json()["data"]
    ]
    assert any("page=4" in q for q in pages)


def test_identical_record_answers_81058_and_other_target_81053(
    server: BackgroundServer, control: httpx.Client
) -> None:
    client = sdk(server)
    create_cname(client)
    with pytest.raises(cloudflare.BadRequestError) as identical:
        create_cname(client)
    assert identical.value.status_code == 400
    assert identical.value.body["errors"] == [
        {"code": 81058, "message": "An identical record already exists."}
    ]
    assert identical.value.body["success"] is False
    with pytest.raises(cloudflare.BadRequestError) as elsewhere:
        create_cname(client, content="someone-else.example.net")
    assert elsewhere.value.body["errors"][0]["code"] == 81053
    with pytest.raises(cloudflare.BadRequestError) as a_record:
        client.dns.records.create(
            zone_id=DEMO_ZONE_ID, type="A", name=NAME, content="203.0.113.9", ttl=1
        )
    assert a_record.value.body["errors"][0]["code"] == 81054


def test_legacy_identical_code_81057_is_configurable() -> None:
    app = build_app(SandboxSettings(), CloudflareFakeSettings(identical_record_code=81057))
    with BackgroundServer(app) as legacy:
        client = sdk(legacy)
        create_cname(client)
        with pytest.raises(cloudflare.BadRequestError) as identical:
            create_cname(client)
    assert identical.value.body["errors"] == [
        {"code": 81057, "message": "The record already exists."}
    ]


def test_a_post_retried_by_the_sdk_after_a_lost_answer_comes_back_as_exists(
    server: BackgroundServer, control: httpx.Client
) -> None:
    control.post(
        "/_sandbox/faults",
        json={"kind": "http_500", "method": "POST", "path": "dns_records", "after": True},
    ).raise_for_status()
    client = sdk(server, max_retries=1)
    with pytest.raises(cloudflare.BadRequestError) as retried:
        create_cname(client)
    assert retried.value.body["errors"][0]["code"] == 81058
    # The first try did create it: exactly one record exists, found by the lookup.
    records = control.get("/_sandbox/records", params={"name": NAME}).json()["data"]
    assert len(records) == 1
    calls = control.get("/_sandbox/requests", params={"method": "POST"}).json()["data"]
    assert [(c["status"], c["fault"]) for c in calls] == [(500, "http_500"), (400, None)]


def test_patch_put_and_delete(server: BackgroundServer, control: httpx.Client) -> None:
    client = sdk(server)
    record = create_cname(client, comment="first")
    patched = client.dns.records.edit(
        record.id, zone_id=DEMO_ZONE_ID, type="CNAME", name=NAME, content="new.eu.stape.io", ttl=1
    )
    assert (patched.content, patched.comment) == ("new.eu.stape.io", "first")
    replaced = client.dns.records.update(
        record.id, zone_id=DEMO_ZONE_ID, type="CNAME", name=NAME, content=TARGET, ttl=300
    )
    # PUT replaces the whole record: the comment is gone.
    assert (replaced.content, replaced.ttl, replaced.comment) == (TARGET, 300, None)
    deleted = client.dns.records.delete(record.id, zone_id=DEMO_ZONE_ID)
    assert deleted is not None and deleted.id == record.id
    with pytest.raises(cloudflare.NotFoundError) as gone:
        client.dns.records.get(record.id, zone_id=DEMO_ZONE_ID)
    assert gone.value.body["errors"][0]["code"] == 81044


def test_wrong_token_zone_and_header_answers(
    server: BackgroundServer, control: httpx.Client
) -> None:
    with pytest.raises(cloudflare.PermissionDeniedError) as unknown:
        list(sdk(server, token="x" * 40).dns.records.list(zone_id=DEMO_ZONE_ID))
    assert unknown.value.body["errors"] == [{"code": 10000, "message": "Authentication error"}]

    with pytest.raises(cloudflare.BadRequestError) as malformed:
        list(sdk(server, token="short").dns.records.list(zone_id=DEMO_ZONE_ID))
    assert malformed.value.body["errors"][0]["code"] == 6003
    assert malformed.value.body["errors"][0]["error_chain"][0]["code"] == 6111

    with pytest.raises(cloudflare.BadRequestError) as no_zone:
        list(sdk(server).dns.records.list(zone_id="trackai.test"))
    assert [e["code"] for e in no_zone.value.body["errors"]] == [7003, 7000]

    control.post("/_sandbox/zones", json={"name": "other.test", "zone_id": OTHER_ZONE})
    control.post("/_sandbox/tokens", json={"token": SCOPED_TOKEN, "zones": [OTHER_ZONE]})
    assert list(sdk(server, token=SCOPED_TOKEN).dns.records.list(zone_id=OTHER_ZONE)) == []
    with pytest.raises(cloudflare.PermissionDeniedError):
        list(sdk(server, token=SCOPED_TOKEN).dns.records.list(zone_id=DEMO_ZONE_ID))

    missing = httpx.get(f"{server.base_url}/client/v4/zones/{DEMO_ZONE_ID}/dns_records")
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["code"] == 9106


def test_rate_limit_then_429_for_a_whole_window(
    server: BackgroundServer, control: httpx.Client
) -> None:
    control.post("/_sandbox/rate-limit", json={"limit": 3, "window_s": 300}).raise_for_status()
    client = sdk(server)
    for _ in range(3):
        client.zones.get(zone_id=DEMO_ZONE_ID)
    with pytest.raises(cloudflare.RateLimitError) as limited:
        client.zones.get(zone_id=DEMO_ZONE_ID)
    assert limited.value.body["errors"][0]["code"] == 971
    assert int(limited.value.response.headers["retry-after"]) == 300


def test_validation_and_dns_view(server: BackgroundServer, control: httpx.Client) -> None:
    client = sdk(server)
    with pytest.raises(cloudflare.BadRequestError) as bad_ttl:
        client.dns.records.create(
            zone_id=DEMO_ZONE_ID, type="CNAME", name="x", content=TARGET, ttl=5
        )
    assert bad_ttl.value.body["errors"][0]["code"] == 1004
    create_cname(client)
    create_cname(client, name="proxied.trackai.test", proxied=True)
    plain = control.get("/_sandbox/resolve", params={"name": NAME}).json()["answers"]
    assert plain == [{"type": "CNAME", "data": TARGET}]
    proxied = control.get("/_sandbox/resolve", params={"name": "proxied.trackai.test"}).json()
    assert {a["type"] for a in proxied["answers"]} == {"A"}


def test_timeout_fault_holds_the_call_until_the_client_gives_up(
    server: BackgroundServer, control: httpx.Client
) -> None:
    control.post("/_sandbox/faults", json={"kind": "timeout", "hang_s": 5}).raise_for_status()
    with pytest.raises(cloudflare.APITimeoutError):
        sdk(server, timeout=0.5).zones.get(zone_id=DEMO_ZONE_ID)
    assert sdk(server).zones.get(zone_id=DEMO_ZONE_ID).name == "trackai.test"
