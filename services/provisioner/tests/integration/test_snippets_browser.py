"""Each platform's snippet in headless Chromium (Debian's, never downloaded): it loads GTM and our
tracking script, fires the collect call, and on thank-you pages the pixel Purchase whose eventID
is trackai_kit.identity.event_id for the same order. The internet is stubbed with page.route."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from trackai_kit.identity import event_id
from trackai_provisioner.domain import snippets
from trackai_testing.browser import CHROMIUM, CHROMIUM_ARGS
from trackai_testing.plugin import require_tool

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TRACK_JS = (
    Path(__file__).resolve().parents[4] / "services/ingestion/src/trackai_ingestion/static/track.js"
)
SCRIPT_URL = "https://collect.trackai.test/sdk/v1/track.js"
PAGE = "https://shop.example.com/obrigado"
TENANT = str(uuid.UUID("3f2504e0-4f89-11d3-9a0c-0305e82c3301"))

# Stand-ins for Google's and Meta's scripts: they record what the page asked of them.
GTM_STUB = "window.__gtm = (window.__gtm || 0) + 1;"
FBEVENTS_STUB = """
window.__fbq = [];
(function (f) {
  f.callMethod = function () { window.__fbq.push(Array.prototype.slice.call(arguments)); };
  (f.queue || []).forEach(function (args) { f.callMethod.apply(f, args); });
  f.queue = [];
})(window.fbq);
"""


@pytest.fixture(scope="module")
def chromium_available() -> None:
    require_tool(CHROMIUM, "`make test` installs Debian's chromium")
    if not TRACK_JS.exists():
        pytest.skip("ingestion's track.js is not in this checkout")


def _data() -> snippets.SnippetInput:
    return snippets.SnippetInput(
        tenant_id=TENANT,
        funnel_slug="launch",
        pixel_id="1234567890",
        gtm_public_id="GTM-TEST123",
        script_url=SCRIPT_URL,
        checkout_domains=("pay.kiwify.com.br",),
    )


async def _load(snippet: str, query: str) -> dict[str, Any]:
    from playwright.async_api import Route, async_playwright

    page_html = f"<!doctype html><html><head>{snippet}</head><body><h1>ok</h1></body></html>"
    seen: dict[str, Any] = {"collect": [], "gtm": [], "fbevents": 0}

    async def handle(route: Route) -> None:
        url = route.request.url
        if url.startswith(PAGE):
            await route.fulfill(status=200, content_type="text/html", body=page_html)
        elif url == SCRIPT_URL:
            await route.fulfill(
                status=200, content_type="application/javascript", body=TRACK_JS.read_text()
            )
        elif "/api/v1/collect/" in url:
            seen["collect"].append((url, route.request.post_data))
            await route.fulfill(
                status=204,
                headers={"Access-Control-Allow-Origin": "https://shop.example.com"},
            )
        elif url.startswith("https://www.googletagmanager.com/gtm.js"):
            seen["gtm"].append(url)
            await route.fulfill(status=200, content_type="application/javascript", body=GTM_STUB)
        elif url.startswith("https://connect.facebook.net/"):
            seen["fbevents"] += 1
            await route.fulfill(
                status=200, content_type="application/javascript", body=FBEVENTS_STUB
            )
        else:
            await route.abort()

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.route("**/*", handle)
            await page.goto(f"{PAGE}{query}")
            await page.wait_for_function("() => window.trackai !== undefined")
            await page.wait_for_timeout(300)
            if "order_id" in query:
                await page.wait_for_function(
                    "() => (window.__fbq || []).some(c => c[1] === 'Purchase')"
                )
            seen["fbq"] = await page.evaluate("() => window.__fbq || []")
            seen["dataLayer"] = await page.evaluate(
                "() => (window.dataLayer || []).filter(e => e.event === 'trackai_purchase')"
            )
        finally:
            await browser.close()
    return seen


@pytest.mark.parametrize("platform", [p.key for p in snippets.PLATFORMS if not p.thank_you])
async def test_page_snippet_loads_gtm_and_fires_the_collect_call(
    chromium_available: None, platform: str
) -> None:
    chosen = next(p for p in snippets.PLATFORMS if p.key == platform)
    seen = await _load(snippets.render(chosen, _data()), "?utm_source=meta")
    assert seen["gtm"] == ["https://www.googletagmanager.com/gtm.js?id=GTM-TEST123"]
    [(url, body)] = seen["collect"]
    assert url == f"https://collect.trackai.test/api/v1/collect/{TENANT}"
    hit = json.loads(body)
    assert hit["type"] == "page_view"
    assert hit["funnel"] == "launch"
    assert re.fullmatch(r"[0-9a-f]{64}", hit["visitor_id"])  # the stable visitor id
    assert not [c for c in seen.get("fbq", []) if c[:2] == ["track", "Purchase"]]


@pytest.mark.parametrize("platform", [p for p in snippets.PLATFORMS if p.thank_you])
async def test_thank_you_snippet_fires_the_pixel_purchase_with_the_shared_event_id(
    chromium_available: None, platform: snippets.Platform
) -> None:
    seen = await _load(
        snippets.render(platform, _data()), "?order_id=PED-0042&value=197.00&currency=brl"
    )
    assert platform.gateway is not None
    expected = event_id(TENANT, platform.gateway, "PED-0042", "Purchase")
    assert seen["collect"], "the tracking script sent no hit"
    assert seen["gtm"] == ["https://www.googletagmanager.com/gtm.js?id=GTM-TEST123"]
    assert seen["fbevents"] == 1
    # The pixel gets the tracking script's visitor id as external_id: the value every hit carries,
    # which the server sends as the Purchase's external_id.
    visitor = json.loads(seen["collect"][0][1])["visitor_id"]
    assert re.fullmatch(r"[0-9a-f]{64}", visitor)
    assert ["init", "1234567890", {"external_id": visitor}] in seen["fbq"]
    [purchase] = [c for c in seen["fbq"] if c[:2] == ["track", "Purchase"]]
    assert purchase[2] == {"value": 197, "currency": "BRL"}
    assert purchase[3] == {"eventID": expected}
    [pushed] = seen["dataLayer"]
    assert pushed["event_id"] == expected
    assert pushed["transaction_id"] == "PED-0042"
