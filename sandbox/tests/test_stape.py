"""The Stape fake over a real HTTP server (httpx, as the provisioner calls Stape), with the
Cloudflare fake answering the DNS its domain revalidation reads."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from trackai_sandbox.cloudflare import DEMO_TOKEN, DEMO_ZONE_ID, CloudflareFakeSettings
from trackai_sandbox.cloudflare import build_app as build_cloudflare
from trackai_sandbox.server import BackgroundServer
from trackai_sandbox.settings import SandboxSettings
from trackai_sandbox.stape import ANONYMIZE_KEYS, DEMO_EU_KEY, DEMO_KEY, StapeFakeSettings
from trackai_sandbox.stape import build_app as build_stape

CODE = base64.b64encode(b"id=GTM-ABCDEFG&env=1&auth=abcdefghijklmnopqrstuv").decode()
DOMAIN = "acme.track.trackai.test"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[BackgroundServer, BackgroundServer]]:
    with BackgroundServer(build_cloudflare(SandboxSettings(), CloudflareFakeSettings())) as cf:
        fake = StapeFakeSettings(ready_after_s=0.3, dns_resolver_url=cf.base_url)
        with BackgroundServer(build_stape(SandboxSettings(), fake)) as stape:
            yield stape, cf


@pytest.fixture
def stape(servers: tuple[BackgroundServer, BackgroundServer]) -> Iterator[httpx.Client]:
    server, cloudflare = servers
    with httpx.Client(
        base_url=server.base_url, headers={"X-AUTH-TOKEN": DEMO_KEY}, timeout=10
    ) as http:
        http.post("/_sandbox/reset").raise_for_status()
        httpx.post(f"{cloudflare.base_url}/_sandbox/reset").raise_for_status()
        yield http


@pytest.fixture
def cloudflare(servers: tuple[BackgroundServer, BackgroundServer]) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{servers[1].base_url}/client/v4",
        headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
    ) as http:
        yield http


def container_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "acme",
        "code": CODE,
        "codeSettings": {"domain": DOMAIN, "webGtmId": "GTM-WEB1234", "platform": "other"},
        "anonymizeOptions": dict.fromkeys(ANONYMIZE_KEYS, "n"),
        "zone": {"type": "eu"},
    }
    body.update(overrides)
    return body


def create(stape: httpx.Client, **overrides: Any) -> dict[str, Any]:
    answer = stape.post("/api/v2/containers", json=container_body(**overrides))
    assert answer.status_code == 200, answer.text
    created: dict[str, Any] = answer.json()["body"]
    return created


def test_container_deploys_then_runs_and_is_deleted(stape: httpx.Client) -> None:
    created = create(stape)
    assert created["status"] == {"type": "deploying", "label": "Deploying"}
    assert created["name"] == "acme" and created["code"] == CODE
    assert created["stapeDomain"] == f"{created['identifier']}.eu.stape.io"
    path = f"/api/v2/containers/{created['identifier']}"
    deadline = time.monotonic() + 5
    while stape.get(path).json()["body"]["status"]["type"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [c["identifier"] for c in stape.get("/api/v2/containers").json()["body"]] == [
        created["identifier"]
    ]
    assert stape.delete(path).json() == {"body": None}
    missing = stape.get(path)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == 404


def test_never_running_and_forced_status_switches(stape: httpx.Client) -> None:
    stape.post("/_sandbox/behaviour", json={"never_running": True}).raise_for_status()
    created = create(stape)
    time.sleep(0.4)
    path = f"/api/v2/containers/{created['identifier']}"
    assert stape.get(path).json()["body"]["status"]["type"] == "deploying"
    stape.post(
        f"/_sandbox/containers/{created['identifier']}/status", json={"type": "error"}
    ).raise_for_status()
    assert stape.get(path).json()["body"]["status"] == {"type": "error", "label": "Error"}


def test_validation_errors_are_wrapped_in_body(stape: httpx.Client) -> None:
    short = stape.post("/api/v2/containers", json=container_body(code="x" * 63))
    assert short.status_code == 400
    assert short.json() == {
        "body": {
            "errors": {"code": ["This value is too short. It should have 64 characters or more."]}
        }
    }
    partial = dict.fromkeys(ANONYMIZE_KEYS[1:], "n")
    missing = stape.post(
        "/api/v2/containers",
        json=container_body(name="", anonymizeOptions=partial, zone={"type": "mars"}),
    ).json()["body"]["errors"]
    assert missing == {
        "name": ["This value should not be blank."],
        "zone.type": ["The value you selected is not a valid choice."],
        f"anonymizeOptions.{ANONYMIZE_KEYS[0]}": ["This value should not be blank."],
    }
    assert len(ANONYMIZE_KEYS) == 34


def test_a_key_works_only_in_its_region(stape: httpx.Client) -> None:
    eu = stape.post(
        "/eu/api/v2/containers", json=container_body(), headers={"X-AUTH-TOKEN": DEMO_EU_KEY}
    )
    assert eu.status_code == 200
    wrong = stape.get("/eu/api/v2/containers")  # the global key against the EU host
    assert wrong.status_code == 401
    assert set(wrong.json()["error"]) == {"code", "message", "description", "error"}
    assert stape.get("/api/v2/containers").json()["body"] == []
    assert stape.get("/api/v2/containers", headers={"X-AUTH-TOKEN": ""}).status_code == 401


def test_put_replaces_the_whole_document(stape: httpx.Client) -> None:
    created = create(stape, geoHeaders=True, previewHeader="abc")
    path = f"/api/v2/containers/{created['identifier']}"
    replaced = stape.put(path, json=container_body(name="acme 2")).json()["body"]
    assert replaced["name"] == "acme 2"
    assert replaced["geoHeaders"] is False and replaced["previewHeader"] is None
    assert stape.put(path, json={"name": "only a name"}).status_code == 400


def test_domain_add_conflict_revalidate_against_cloudflare_dns(
    stape: httpx.Client, cloudflare: httpx.Client
) -> None:
    container = create(stape)
    domains = f"/api/v2/containers/{container['identifier']}/domains"
    added = stape.post(
        domains, json={"name": DOMAIN, "cdnType": "stape", "useCnameRecord": True}
    ).json()["body"]
    assert len(added["identifier"]) == 36
    [record] = added["records"]
    assert record == {
        "type": {"type": "CNAME", "label": "CNAME"},
        "host": DOMAIN,
        "value": container["stapeDomain"],
    }
    again = stape.post(domains, json={"name": DOMAIN, "cdnType": "stape", "useCnameRecord": True})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == 409

    revalidate = f"{domains}/{added['identifier']}/revalidate"
    nothing = stape.post(revalidate).json()["body"]
    assert nothing["status"]["type"] == "failed"
    assert nothing["error"]["type"] == "record_not_found"

    record_body = {"type": "CNAME", "name": DOMAIN, "content": record["value"], "ttl": 1}
    created = cloudflare.post(
        f"/zones/{DEMO_ZONE_ID}/dns_records", json=record_body | {"proxied": True}
    ).json()["result"]
    assert stape.post(revalidate).json()["body"]["error"]["type"] == "proxied_record"

    cloudflare.patch(
        f"/zones/{DEMO_ZONE_ID}/dns_records/{created['id']}", json={"proxied": False}
    ).raise_for_status()
    verified = stape.post(revalidate).json()["body"]
    assert (verified["status"]["type"], verified["error"]) == ("verified", None)
    assert verified["verificationCount"] == 3
    assert stape.get(f"{domains}/{added['identifier']}").json()["body"]["status"]["type"] == (
        "verified"
    )
    listed = stape.get(domains).json()["body"]
    assert (listed["total"], listed["items"][0]["name"]) == (1, DOMAIN)
    assert stape.delete(f"{domains}/{added['identifier']}").json() == {"body": None}
    assert stape.get(f"{domains}/{added['identifier']}").status_code == 404


def test_verification_delay_and_dns_override(stape: httpx.Client) -> None:
    stape.post("/_sandbox/behaviour", json={"verify_delay_s": 0.3}).raise_for_status()
    container = create(stape)
    domains = f"/api/v2/containers/{container['identifier']}/domains"
    added = stape.post(domains, json={"name": DOMAIN, "useCnameRecord": True}).json()["body"]
    stape.post(
        "/_sandbox/dns",
        json={"name": DOMAIN, "answers": [{"type": "CNAME", "data": container["stapeDomain"]}]},
    ).raise_for_status()
    pending = stape.post(f"{domains}/{added['identifier']}/revalidate").json()["body"]
    assert pending["status"]["type"] == "verifying"
    time.sleep(0.35)
    done = stape.get(f"{domains}/{added['identifier']}").json()["body"]
    assert done["status"]["type"] == "verified"


def test_faults_answer_like_stape_and_its_proxy(stape: httpx.Client) -> None:
    stape.post("/_sandbox/faults", json={"kind": "http_500"}).raise_for_status()
    stape.post("/_sandbox/faults", json={"kind": "http_503"}).raise_for_status()
    first = stape.get("/api/v2/containers")
    assert first.status_code == 500 and first.json()["error"]["code"] == 500
    second = stape.get("/api/v2/containers")
    assert second.status_code == 503 and "nginx" in second.text
    assert stape.get("/api/v2/containers").status_code == 200
    stape.post(
        "/_sandbox/faults", json={"kind": "timeout", "hang_s": 5, "path": "/containers"}
    ).raise_for_status()
    with pytest.raises(httpx.ReadTimeout):
        stape.get("/api/v2/containers", timeout=0.3)
    calls = stape.get("/_sandbox/requests").json()["data"]
    assert [c["fault"] for c in calls] == ["http_500", "http_503", None, "timeout"]
