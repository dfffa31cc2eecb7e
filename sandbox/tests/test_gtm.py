"""The Tag Manager fake, driven through google-api-python-client's bundled v2 discovery document
over a real HTTP server."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from trackai_sandbox.gtm import BAD_TOKEN, DEMO_ACCOUNT_ID, GtmFakeSettings, build_app
from trackai_sandbox.server import BackgroundServer
from trackai_sandbox.settings import SandboxSettings

discovery = pytest.importorskip("googleapiclient.discovery")
errors = pytest.importorskip("googleapiclient.errors")
credentials = pytest.importorskip("google.oauth2.credentials")

ACCOUNT = f"accounts/{DEMO_ACCOUNT_ID}"


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(build_app(SandboxSettings(), GtmFakeSettings())) as running:
        yield running


@pytest.fixture
def control(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        http.post("/_sandbox/reset").raise_for_status()
        # Most tests are about entities, not the quota: lift it (one test puts it back).
        http.post("/_sandbox/quota", json={"qps": 1000}).raise_for_status()
        yield http


def service(server: BackgroundServer, token: str = "ya29.sandbox-access-token") -> Any:
    return discovery.build(
        "tagmanager",
        "v2",
        credentials=credentials.Credentials(token=token),
        static_discovery=True,
        client_options={"api_endpoint": server.base_url},
        cache_discovery=False,
    ).accounts()


def new_container(api: Any, name: str = "acme server", usage: str = "server") -> Any:
    return (
        api.containers().create(parent=ACCOUNT, body={"name": name, "usageContext": [usage]})
    ).execute()


def default_workspace(api: Any, container: dict[str, Any]) -> dict[str, Any]:
    [workspace] = (
        api.containers().workspaces().list(parent=container["path"]).execute()["workspace"]
    )
    return dict(workspace)


def test_container_create_snippet_list_and_delete(
    server: BackgroundServer, control: httpx.Client
) -> None:
    api = service(server)
    server_container = new_container(api)
    assert server_container["path"] == f"{ACCOUNT}/containers/{server_container['containerId']}"
    assert server_container["publicId"].startswith("GTM-")
    assert server_container["usageContext"] == ["server"]
    config = api.containers().snippet(path=server_container["path"]).execute()["containerConfig"]
    assert 64 <= len(config) <= 255  # what Stape's ``code`` accepts
    assert f"id={server_container['publicId']}" in base64.b64decode(config).decode()
    web = new_container(api, "acme web", "web")
    assert (
        "googletagmanager.com/gtm.js"
        in api.containers().snippet(path=web["path"]).execute()["snippet"]
    )
    names = {c["name"] for c in api.containers().list(parent=ACCOUNT).execute()["container"]}
    assert names == {"acme server", "acme web"}
    assert api.containers().delete(path=web["path"]).execute() == ""  # 204, no body
    with pytest.raises(errors.HttpError) as gone:
        api.containers().get(path=web["path"]).execute()
    assert gone.value.status_code == 404


def test_container_names_are_unique_per_account(
    server: BackgroundServer, control: httpx.Client
) -> None:
    api = service(server)
    new_container(api)
    with pytest.raises(errors.HttpError) as duplicate:
        new_container(api)
    assert duplicate.value.status_code == 400
    assert duplicate.value.error_details[0]["reason"] == "badRequest"
    body = httpx.post(
        f"{server.base_url}/tagmanager/v2/{ACCOUNT}/containers",
        json={"name": "acme server", "usageContext": ["server"]},
        headers={"Authorization": "Bearer t"},
    ).json()
    assert body["error"]["status"] == "INVALID_ARGUMENT"
    assert set(body["error"]) == {"code", "message", "errors", "status"}


def build_server_workspace(api: Any, missing_variable: bool) -> tuple[Any, Any, Any]:
    container = new_container(api)
    workspace = default_workspace(api, container)
    ws = api.containers().workspaces()
    template = (
        ws.templates()
        .import_from_gallery(
            parent=workspace["path"],
            galleryOwner="stape-io",
            galleryRepository="facebook-tag",
            acknowledgePermissions=True,
        )
        .execute()
    )
    assert template["galleryReference"]["repository"] == "facebook-tag"
    ws.variables().create(
        parent=workspace["path"],
        body={
            "name": "Pixel ID",
            "type": "c",
            "parameter": [{"type": "template", "key": "value", "value": "1234567890"}],
        },
    ).execute()
    trigger = (
        ws.triggers()
        .create(
            parent=workspace["path"],
            body={
                "name": "Purchase",
                "type": "customEvent",
                "customEventFilter": [
                    {
                        "type": "equals",
                        "parameter": [
                            {"type": "template", "key": "arg0", "value": "{{Event Name}}"},
                            {"type": "template", "key": "arg1", "value": "purchase"},
                        ],
                    }
                ],
            },
        )
        .execute()
    )
    parameters = [{"type": "template", "key": "pixelId", "value": "{{Pixel ID}}"}]
    if missing_variable:
        parameters.append({"type": "template", "key": "accessToken", "value": "{{CAPI token}}"})
    tag = (
        ws.tags()
        .create(
            parent=workspace["path"],
            body={
                "name": "Meta CAPI Purchase",
                "type": f"cvt_{container['containerId']}_{template['templateId']}",
                "parameter": parameters,
                "firingTriggerId": [trigger["triggerId"]],
                "tagFiringOption": "oncePerEvent",
            },
        )
        .execute()
    )
    return container, workspace, tag


def test_compiler_error_then_version_publish_and_live(
    server: BackgroundServer, control: httpx.Client
) -> None:
    api = service(server)
    container, workspace, tag = build_server_workspace(api, missing_variable=True)
    ws = api.containers().workspaces()
    refused = ws.create_version(path=workspace["path"], body={"name": "v1"}).execute()
    assert refused["compilerError"] is True
    assert "containerVersion" not in refused
    with pytest.raises(errors.HttpError) as no_live:
        api.containers().versions().live(parent=container["path"]).execute()
    assert no_live.value.status_code == 404

    fixed = {**tag, "parameter": tag["parameter"][:1]}
    updated = ws.tags().update(path=tag["path"], body=fixed, fingerprint=tag["fingerprint"])
    assert updated.execute()["fingerprint"] != tag["fingerprint"]
    with pytest.raises(errors.HttpError) as stale:
        ws.tags().update(path=tag["path"], body=fixed, fingerprint=tag["fingerprint"]).execute()
    assert stale.value.status_code == 409

    created = ws.create_version(path=workspace["path"], body={"name": "v1"}).execute()
    assert created["compilerError"] is False
    version = created["containerVersion"]
    assert [t["name"] for t in version["tag"]] == ["Meta CAPI Purchase"]
    assert {v["name"] for v in version["variable"]} == {"Pixel ID"}
    # The workspace was consumed; GTM opened a new one carrying the same entities.
    assert created["newWorkspacePath"] != workspace["path"]
    with pytest.raises(errors.HttpError):
        ws.get(path=workspace["path"]).execute()
    carried = ws.tags().list(parent=created["newWorkspacePath"]).execute()["tag"]
    assert [t["tagId"] for t in carried] == [tag["tagId"]]

    published = api.containers().versions().publish(path=version["path"]).execute()
    assert published["compilerError"] is False
    live = api.containers().versions().live(parent=container["path"]).execute()
    assert live["containerVersionId"] == version["containerVersionId"]


def test_bodies_are_checked_like_googles_parser(
    server: BackgroundServer, control: httpx.Client
) -> None:
    api = service(server)
    container = new_container(api, "web", "web")
    workspace = default_workspace(api, container)
    tags = api.containers().workspaces().tags()
    upper = {
        "name": "html",
        "type": "html",
        "parameter": [{"type": "TEMPLATE", "key": "html", "value": "<p></p>"}],
    }
    with pytest.raises(errors.HttpError) as enum:
        tags.create(parent=workspace["path"], body=upper).execute()
    assert enum.value.status_code == 400
    assert "Invalid value at 'tag.parameter[0].type'" in enum.value.reason
    with pytest.raises(errors.HttpError) as unknown:
        tags.create(
            parent=workspace["path"], body={"name": "x", "type": "html", "tag_id": "1"}
        ).execute()
    assert 'Unknown name "tag_id"' in unknown.value.reason
    tags.create(parent=workspace["path"], body={"name": "x", "type": "html"}).execute()
    with pytest.raises(errors.HttpError) as duplicate:
        tags.create(parent=workspace["path"], body={"name": "x", "type": "html"}).execute()
    assert duplicate.value.status_code == 400
    with pytest.raises(errors.HttpError) as wrong_context:
        api.containers().workspaces().templates().import_from_gallery(
            parent=workspace["path"],
            galleryOwner="stape-io",
            galleryRepository="facebook-tag",
            acknowledgePermissions=True,
        ).execute()
    assert wrong_context.value.status_code == 400


def test_bad_token_is_401_unauthenticated(server: BackgroundServer, control: httpx.Client) -> None:
    answer = httpx.get(
        f"{server.base_url}/tagmanager/v2/accounts",
        headers={"Authorization": f"Bearer {BAD_TOKEN}"},
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["status"] == "UNAUTHENTICATED"
    assert answer.json()["error"]["errors"][0]["reason"] == "authError"
    missing = httpx.get(f"{server.base_url}/tagmanager/v2/accounts")
    assert missing.status_code == 401
    # google-auth answers a 401 by refreshing; a bare access token cannot, so the client stops.
    with pytest.raises(Exception, match="refresh"):
        service(server, BAD_TOKEN).list().execute()


def test_request_rate_is_enforced_per_project(
    server: BackgroundServer, control: httpx.Client
) -> None:
    control.post("/_sandbox/quota", json={"qps": 0.25, "window_s": 60}).raise_for_status()
    api = service(server)
    for _ in range(15):  # 0.25 requests/s over a minute
        api.list().execute()
    with pytest.raises(errors.HttpError) as limited:
        api.list().execute()
    assert limited.value.status_code == 429
    body = httpx.get(
        f"{server.base_url}/tagmanager/v2/accounts", headers={"Authorization": "Bearer other"}
    ).json()["error"]
    assert body["status"] == "RESOURCE_EXHAUSTED"
    assert body["errors"][0]["reason"] == "rateLimitExceeded"
    # Another Cloud project has its own quota.
    control.post("/_sandbox/tokens", json={"token": "other-project", "project": "42"})
    service(server, "other-project").list().execute()


def test_the_client_retries_a_rate_limited_call_once_the_window_moves(
    server: BackgroundServer, control: httpx.Client
) -> None:
    control.post("/_sandbox/quota", json={"qps": 2, "window_s": 1}).raise_for_status()
    api = service(server)
    api.list().execute()
    api.list().execute()
    # num_retries: the client sleeps and tries again on 429, as the provisioner's backoff does.
    assert api.list().execute(num_retries=4)["account"][0]["accountId"] == DEMO_ACCOUNT_ID
    statuses = [c["status"] for c in control.get("/_sandbox/requests").json()["data"]]
    assert 429 in statuses and statuses[-1] == 200


def test_403_rate_limit_variant_and_5xx_envelope() -> None:
    app = build_app(
        SandboxSettings(), GtmFakeSettings(qps=1 / 60, window_s=60, rate_limit_status=403)
    )
    with BackgroundServer(app) as legacy:
        api = service(legacy)
        api.list().execute()
        with pytest.raises(errors.HttpError) as limited:
            api.list().execute()
        assert limited.value.status_code == 403
        assert limited.value.error_details[0]["reason"] == "RATE_LIMIT_EXCEEDED"
        httpx.post(f"{legacy.base_url}/_sandbox/quota", json={"qps": 100}).raise_for_status()
        httpx.post(f"{legacy.base_url}/_sandbox/faults", json={"kind": "http_503"})
        with pytest.raises(errors.HttpError) as unavailable:
            api.list().execute()
        assert unavailable.value.status_code == 503
        assert unavailable.value.reason == "The service is currently unavailable."
