"""Each tool against real servers: the Meta fake, a scripted provisioner/ingestion over gRPC, and
local pages over HTTP/HTTPS (present, missing, duplicated and JS-injected pixels, redirects that
drop fbclid, an expired certificate, private addresses)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai_agent.adapters.web import FetchLimits, SafeFetcher
from trackai_agent.domain.model import SetupContext
from trackai_sandbox.testing import MetaSandboxClient

from .conftest import APP_ID, Wired
from .harness import INJECTED_HTML, OUR_SCRIPT, PIXEL, Page, pixel_html, web_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
STARTED = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


async def run(wired: Wired, tool: str, **arguments: str) -> dict[str, object]:
    result = (
        await wired.tools().run(tool, wired.backend.tenant_id, "launch", arguments, STARTED)
    ).result
    return result.as_dict()


# --- validate_meta_token -------------------------------------------------------------------------
async def test_valid_token_names_app_scopes_and_pixel(wired: Wired) -> None:
    answer = await run(wired, "validate_meta_token")
    assert answer["status"] == "ok", answer
    assert "SYSTEM_USER" in str(answer["message"])
    assert "não expira" in str(answer["message"])
    assert "Track AI demo pixel" in str(answer["message"])


async def test_expired_token_gives_the_date_and_where_to_generate_a_new_one(
    wired: Wired, meta: MetaSandboxClient
) -> None:
    expired_at = int(time.time()) - 5 * 86400
    meta.register_pixel(PIXEL, "old-token", expires_at=expired_at)
    wired.backend.meta_token = "old-token"
    answer = await run(wired, "validate_meta_token")
    when = dt.datetime.fromtimestamp(expired_at, dt.timezone(dt.timedelta(hours=-3)))
    assert answer["status"] == "error"
    assert answer["message"] == f"O token do Meta expirou em {when:%d/%m}."
    assert "Usuários do sistema → Gerar novo token" in str(answer["action"])
    assert "ads_management e business_management" in str(answer["action"])


async def test_token_of_another_app(wired: Wired, meta: MetaSandboxClient) -> None:
    meta.register_token("other-app-token", app_id="999000111", pixel_ids=[PIXEL])
    wired.backend.meta_token = "other-app-token"
    answer = await run(wired, "validate_meta_token")
    assert answer["status"] == "error"
    assert answer["details"]["reason"] == "wrong_app"  # type: ignore[index]
    assert APP_ID in str(answer["action"])


async def test_token_missing_a_scope(wired: Wired, meta: MetaSandboxClient) -> None:
    meta.register_token("ads-only", scopes=["ads_management"], pixel_ids=[PIXEL])
    wired.backend.meta_token = "ads-only"
    answer = await run(wired, "validate_meta_token")
    assert answer["status"] == "error"
    assert "business_management" in str(answer["message"])
    assert answer["details"]["missing_scopes"] == ["business_management"]  # type: ignore[index]


async def test_pixel_of_another_business(wired: Wired, meta: MetaSandboxClient) -> None:
    meta.register_pixel("5550001112", "someone-else")
    wired.backend.pixel_id = "5550001112"
    answer = await run(wired, "validate_meta_token")
    assert answer["status"] == "error"
    assert answer["details"]["reason"] == "pixel_not_accessible"  # type: ignore[index]
    assert "outra empresa" in str(answer["message"])


# --- validate_gateway_webhook ----------------------------------------------------------------------
async def test_no_webhook_since_setup_gives_the_url_and_blocks(wired: Wired) -> None:
    wired.backend.webhooks = [("kiwify", STARTED - dt.timedelta(hours=1))]
    answer = await run(wired, "validate_gateway_webhook")
    url = f"https://ingest.example/api/v1/webhooks/kiwify/{wired.backend.tenant_id}"
    assert answer["status"] == "error"
    assert url in str(answer["action"])
    assert "Kiwify → Apps → Webhooks" in str(answer["action"])
    assert answer["details"]["blocks_setup"] is True  # type: ignore[index]


async def test_refused_webhooks_name_the_credential_that_did_not_match(wired: Wired) -> None:
    wired.backend.refused = [("kiwify", "kiwify_signature", STARTED + dt.timedelta(minutes=2))] * 2
    answer = await run(wired, "validate_gateway_webhook")
    assert answer["status"] == "error"
    assert "2 da Kiwify recusado(s) porque o token do webhook da Kiwify não confere" in str(
        answer["message"]
    )
    assert "Kiwify → Apps → Webhooks → (seu webhook) → Token" in str(answer["action"])
    assert answer["details"]["refused"] == {"kiwify": {"kiwify_signature": 2}}  # type: ignore[index]


async def test_verified_webhook_since_setup_passes(wired: Wired) -> None:
    wired.backend.webhooks = [("kiwify", STARTED + dt.timedelta(minutes=3))]
    answer = await run(wired, "validate_gateway_webhook")
    assert answer["status"] == "ok", answer
    assert answer["details"]["verified"] == {"kiwify": 1}  # type: ignore[index]


# --- probe_landing_url ---------------------------------------------------------------------------
async def test_probe_of_a_good_page(wired: Wired) -> None:
    with web_server({"/": Page(body=pixel_html(PIXEL))}) as site:
        wired.backend.landing_url = site.base_url + "/"
        answer = await run(wired, "probe_landing_url")
    assert answer["status"] == "ok", answer
    assert answer["details"]["our_script"] is True  # type: ignore[index]


async def test_redirect_that_drops_fbclid(wired: Wired) -> None:
    with web_server() as site:
        site.pages["/promo"] = Page(301, headers={"Location": site.base_url + "/landing"})
        site.pages["/landing"] = Page(body=pixel_html(PIXEL))
        wired.backend.landing_url = site.base_url + "/promo"
        answer = await run(wired, "probe_landing_url")
    assert answer["status"] == "error"
    assert answer["details"]["dropped"] == ["fbclid", "utm_medium", "utm_source"]  # type: ignore[index]
    assert "301" in str(answer["message"])


async def test_expired_certificate(wired: Wired, tmp_path: Path) -> None:
    expired = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    tls = wired.ca.server_context(tmp_path, not_after=expired)
    with web_server({"/": Page(body=pixel_html(PIXEL))}, tls=tls, host="localhost") as site:
        wired.backend.landing_url = site.base_url + "/"
        answer = await run(wired, "probe_landing_url")
    assert answer["status"] == "error", answer
    assert answer["details"]["reason"] == "tls_expired"  # type: ignore[index]
    assert f"expirou em {expired.astimezone(dt.timezone(dt.timedelta(hours=-3))):%d/%m}" in str(
        answer["message"]
    )


async def test_valid_certificate_reports_its_expiry(wired: Wired, tmp_path: Path) -> None:
    tls = wired.ca.server_context(tmp_path, not_after=dt.datetime.now(dt.UTC) + dt.timedelta(60))
    with web_server({"/": Page(body=pixel_html(PIXEL))}, tls=tls, host="localhost") as site:
        wired.backend.landing_url = site.base_url + "/"
        answer = await run(wired, "probe_landing_url")
    assert answer["status"] == "ok", answer
    assert answer["details"]["tls_valid"] is True  # type: ignore[index]


@pytest.mark.parametrize("host", ["10.0.0.8", "169.254.169.254", "192.168.1.1"])
async def test_private_addresses_are_refused(wired: Wired, host: str) -> None:
    wired.backend.landing_url = f"http://{host}/"
    answer = await run(wired, "probe_landing_url")
    assert answer["status"] == "error"
    assert answer["details"]["reason"] == "refused"  # type: ignore[index]


async def test_loopback_is_refused_unless_allowed(wired: Wired) -> None:
    with web_server({"/": Page(body=pixel_html(PIXEL))}) as site:
        ctx = SetupContext(
            wired.backend.tenant_id, "launch", site.base_url + "/", PIXEL, "t", "", ()
        )
        refused = await wired.tools(allow_loopback=False).probe_landing_url(ctx)
    assert refused.status == "error"
    assert "loopback" in refused.message


async def test_redirect_to_a_private_address_is_refused_at_that_hop(wired: Wired) -> None:
    with web_server() as site:
        site.pages["/"] = Page(302, headers={"Location": "http://169.254.169.254/latest/"})
        wired.backend.landing_url = site.base_url + "/"
        answer = await run(wired, "probe_landing_url")
    assert answer["details"]["reason"] == "refused"  # type: ignore[index]
    assert "169.254.169.254" in str(answer["message"])


async def test_body_is_cut_at_the_size_limit(wired: Wired) -> None:
    with web_server({"/": Page(body=pixel_html(PIXEL) + "x" * 50_000)}) as site:
        fetcher = SafeFetcher(FetchLimits(allow_loopback=True, max_bytes=1000))
        page = await fetcher.fetch(site.base_url + "/")
    assert page.truncated
    assert len(page.body) == 1000


# --- check_pixel_presence ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("html", "status", "reason"),
    [
        (pixel_html(PIXEL), "ok", "ok"),
        (pixel_html(), "error", "pixel_missing"),
        (pixel_html("999888777"), "error", "other_pixel"),
        (pixel_html(PIXEL, PIXEL), "error", "duplicated"),
        (
            pixel_html(PIXEL, extra="<script>fbq('track', 'Purchase', {value: 1});</script>"),
            "error",
            "purchase_without_event_id",
        ),
        (pixel_html(PIXEL, script=False), "warning", "script_missing"),
    ],
)
async def test_pixel_presence(wired: Wired, html: str, status: str, reason: str) -> None:
    with web_server({"/": Page(body=html)}) as site:
        wired.backend.landing_url = site.base_url + "/"
        answer = await run(wired, "check_pixel_presence")
    assert (answer["status"], answer["details"]["reason"]) == (status, reason), answer  # type: ignore[index]


async def test_pixel_injected_by_javascript_is_found_by_rendering(wired: Wired) -> None:
    with web_server({"/": Page(body=INJECTED_HTML)}) as site:
        wired.backend.landing_url = site.base_url + "/"
        answer = await run(wired, "check_pixel_presence")
    assert answer["status"] == "ok", answer
    assert answer["details"]["rendered"] is True  # type: ignore[index]


# --- send_test_capi_event / generate_tracking_snippet --------------------------------------------
async def test_test_event_reports_its_event_id(wired: Wired) -> None:
    wired.backend.snippets = []
    answer = await run(wired, "send_test_capi_event")
    assert answer["status"] == "ok", answer
    assert answer["details"]["event_id"] == wired.backend.test_events[0]  # type: ignore[index]
    assert "TEST12345" in str(answer["action"])


async def test_test_event_before_provisioning(wired: Wired) -> None:
    answer = await run(wired, "send_test_capi_event")
    assert answer["status"] == "error"
    assert "Provisionar" in str(answer["action"])


async def test_snippets_with_where_to_paste(wired: Wired) -> None:
    wired.backend.snippets = [
        prov.Snippet(platform="html", title="HTML", where="inside <head>", content="<script/>"),
        prov.Snippet(platform="wordpress", title="WordPress", where="WPCode", content="<x/>"),
    ]
    answer = await run(wired, "generate_tracking_snippet", platform="wordpress")
    assert answer["status"] == "ok"
    assert [s["platform"] for s in answer["details"]["snippets"]] == ["wordpress"]  # type: ignore[index]
    assert "cole em WPCode" in str(answer["message"])


async def test_provisioner_down_is_an_error_result(wired: Wired) -> None:
    wired.backend.unavailable = True
    answer = await run(wired, "validate_meta_token")
    assert answer["status"] == "error"
    assert answer["details"]["dependency"] == "provisioner"  # type: ignore[index]


GTM_SNIPPET = (
    "<script>(function(w,d,s,l,i){w[l]=w[l]||[];})(window,document,'script','dataLayer',"
    '"GTM-TRACK01");</script>' + OUR_SCRIPT
)


@pytest.mark.parametrize(
    ("container", "status", "reason"),
    [("GTM-TRACK01", "ok", "ok"), ("GTM-OTHER99", "error", "pixel_missing")],
)
async def test_pixel_fired_by_the_provisioned_gtm_container(
    wired: Wired, container: str, status: str, reason: str
) -> None:
    wired.backend.snippets = [
        prov.Snippet(platform="html", title="HTML", where="<head>", content=GTM_SNIPPET)
    ]
    page = f"<html><head>{GTM_SNIPPET.replace('GTM-TRACK01', container)}</head></html>"
    with web_server({"/": Page(body=page)}) as site:
        wired.backend.landing_url = site.base_url + "/"
        answer = await run(wired, "check_pixel_presence")
    assert (answer["status"], answer["details"]["reason"]) == (status, reason), answer  # type: ignore[index]
    if status == "error":
        assert "GTM-OTHER99" in str(answer["message"]) and "GTM-TRACK01" in str(answer["message"])
