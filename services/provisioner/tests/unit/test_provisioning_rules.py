"""Pure rules of the saga: names, the publish gate, secret masking, templates and snippets."""

from __future__ import annotations

import asyncio
import json
import uuid
from importlib import resources

import pytest

from trackai_provisioner.adapters.throttle import SlidingWindow
from trackai_provisioner.domain import gtm_templates, snippets
from trackai_provisioner.domain.provisioning import (
    Names,
    PublishRefused,
    Run,
    RunStatus,
    StepStatus,
    custom_domain,
    publish_refusal,
    rollback_plan,
    secret_free,
    status_detail,
)


def _run(**kw: object) -> Run:
    base: dict[str, object] = {
        "id": uuid.uuid4(),
        "tenant_id": uuid.uuid4(),
        "funnel_id": uuid.uuid4(),
        "status": RunStatus.AWAITING_APPROVAL,
        "custom_domain": "acme.track.example.com",
        "resources": {},
        "steps": {},
    }
    return Run(**{**base, **kw})  # type: ignore[arg-type]


def test_custom_domain_and_names() -> None:
    assert custom_domain("acme", ".Example.COM.") == "acme.track.example.com"
    names = Names("acme", "launch")
    assert names.stape_container == "trackai-acme"
    assert names.gtm_server_container == "trackai-acme-server"
    assert names.gtm_web_container == "trackai-acme-launch-web"


def test_publish_gate_needs_test_event_then_approval() -> None:
    from datetime import UTC, datetime

    assert "no successful test event" in (publish_refusal(_run()) or "")
    tested = _run(test_event_at=datetime.now(UTC))
    assert "no human approval" in (publish_refusal(tested) or "")
    assert publish_refusal(_run(test_event_at=datetime.now(UTC), approved_by="ana")) is None
    assert "failed" in (publish_refusal(_run(status=RunStatus.FAILED)) or "")
    assert "already published" in (publish_refusal(_run(status=RunStatus.PUBLISHED)) or "")


def test_rollback_plan_restores_only_while_this_publish_is_live() -> None:
    published = _run(
        status=RunStatus.PUBLISHED,
        published_versions={"server": "5", "web": "3"},
        previous_live_versions={"server": "4"},  # the web container was new: nothing before
    )
    assert rollback_plan(published, {"server": "5"}) == {"server": "4"}
    # An interrupted rollback that already restored the server side may run again.
    assert rollback_plan(published, {"server": "4"}) == {"server": "4"}
    with pytest.raises(PublishRefused, match="live version is 6, not 5"):
        rollback_plan(published, {"server": "6"})  # a newer publish happened
    with pytest.raises(PublishRefused, match="live version is none"):
        rollback_plan(published, {"server": None})
    with pytest.raises(PublishRefused, match="nothing was live"):
        rollback_plan(_run(status=RunStatus.PUBLISHED, published_versions={"web": "1"}), {})
    with pytest.raises(PublishRefused, match="the run is awaiting_approval"):
        rollback_plan(_run(), {})


def test_status_detail_names_the_step() -> None:
    assert status_detail("stape_running", StepStatus.FAILED, "late") == "stape_running failed: late"
    assert status_detail("run", StepStatus.RUNNING, "new run for acme") == "new run for acme"


def test_secret_free_masks_tokens_at_any_depth() -> None:
    value = {"name": "x", "access_token": "EAAB", "nested": [{"X-Auth-Token": "k", "id": 1}]}
    assert secret_free(value) == {
        "name": "x",
        "access_token": "<redacted>",
        "nested": [{"X-Auth-Token": "<redacted>", "id": 1}],
    }


def _template(name: str) -> dict[str, object]:
    path = resources.files("trackai_provisioner") / "templates" / "gtm" / f"{name}.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


VALUES = {
    "funnel_slug": "launch",
    "pixel_id": "1234567890",
    "access_token": "EAAB-secret",
    "tagging_server_url": "https://acme.track.example.com",
    "custom_domain": "acme.track.example.com",
    "capi_template_owner": "stape-io",
    "capi_template_repository": "facebook-tag",
    "pixel_template_owner": "facebookarchive",
    "pixel_template_repository": "GoogleTagManager-WebTemplate-For-FacebookPixel",
    "google_tag_id": "G-TEST",
}


def test_templates_render_bind_and_fingerprint_without_the_secret() -> None:
    server = gtm_templates.render(_template("server"), VALUES)
    [tag] = server.entities["tags"]
    bound = gtm_templates.bind(tag, {"Track AI - Purchase [launch]": "7"}, {"meta_capi": "cvt_1_2"})
    assert bound["type"] == "cvt_1_2"
    assert bound["firingTriggerId"] == ["7"]
    assert "firingTriggerNames" not in bound
    other = gtm_templates.render(_template("server"), {**VALUES, "access_token": "rotated"})
    assert server.fingerprint() == other.fingerprint()  # the token never shapes the version name
    secret_var = next(v for v in server.entities["variables"] if v.get("secret"))
    assert "parameter" not in gtm_templates.summary(secret_var)
    web = gtm_templates.render(_template("web"), VALUES)
    googtag = next(t for t in web.entities["tags"] if t["type"] == "googtag")
    assert "server_container_url" in json.dumps(googtag)


def test_unknown_placeholder_is_an_error() -> None:
    with pytest.raises(gtm_templates.TemplateError, match="pixel_id"):
        gtm_templates.render(
            _template("server"), {k: v for k, v in VALUES.items() if k != "pixel_id"}
        )


def test_snippets_cover_every_platform_and_escape_attributes() -> None:
    data = snippets.SnippetInput(
        tenant_id="3f2504e0-4f89-11d3-9a0c-0305e82c3301",
        funnel_slug="launch",
        pixel_id="1234567890",
        gtm_public_id="GTM-ABC1234",
        script_url='https://c.example.com/sdk/v1/track.js?"x',
        checkout_domains=("pay.kiwify.com.br",),
    )
    rendered = {s["platform"]: s["content"] for s in snippets.render_all(data)}
    assert {"html", "wordpress", "kiwify_thank_you", "hotmart_thank_you"} <= set(rendered)
    assert "&quot;x" in rendered["html"]
    assert "eventId(orderId, 'Purchase')" in rendered["kiwify_thank_you"]
    assert "fbq('track', 'Purchase'" not in rendered["html"]


async def test_sliding_window_spaces_calls() -> None:
    window = SlidingWindow(2, 0.2)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(5):
        await window.acquire()
    assert loop.time() - start >= 0.4  # 5 calls at 2 per 0.2 s need two full windows


def test_decrypted_credentials_do_not_show_in_their_repr() -> None:
    from trackai_provisioner.domain.tenants import GatewayCredential, MetaDestination

    secret, token = "gw-" + "s3cr3t", "EAAG" + "tok"
    text = repr([GatewayCredential("hotmart", secret, secret), MetaDestination("1", token, None)])
    assert secret not in text and token not in text
    assert "hotmart" in text
