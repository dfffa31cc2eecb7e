"""The page code a tenant pastes, per platform: the GTM web container snippet, our tracking script
(``/sdk/v1/track.js`` served by ingestion) and, on thank-you pages, the Meta pixel Purchase whose
``eventID`` comes from ``window.trackai.eventId(orderId, 'Purchase')`` (the rule of
``docs/schema/event_id.md``, the same id the dispatcher sends to the Conversions API).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

#: Query parameters a thank-you page reads the order id, value and currency from, first match
#: wins. The checkout must redirect with one of them; each platform's panel sets the redirect URL.
ORDER_PARAMS = ("order_id", "orderId", "transaction_id", "transaction", "trans", "sale_id")
VALUE_PARAMS = ("value", "amount", "total")
CURRENCY_PARAMS = ("currency",)


@dataclass(frozen=True)
class SnippetInput:
    tenant_id: str
    funnel_slug: str
    pixel_id: str
    gtm_public_id: str
    script_url: str  # https://<ingestion host>/sdk/v1/track.js
    checkout_domains: tuple[str, ...]
    default_currency: str = "BRL"


@dataclass(frozen=True)
class Platform:
    key: str
    title: str
    #: Where the code goes, shown with the snippet.
    where: str
    #: Gateway slug for the event id (None: pages not tied to one checkout).
    gateway: str | None
    thank_you: bool


#: Titles and places are shown to sellers (console wizard, setup agent): Brazilian Portuguese.
#: Checkout platforms' hosted thank-you pages do not run a tenant's scripts (they offer their own
#: pixel field); every one of them can redirect to the tenant's own thank-you page, which is where
#: the ``<gateway>_thank_you`` snippet goes, with ``data-gateway`` set for the event id.
PLATFORMS = (
    Platform(
        "html", "HTML (todas as páginas)", "dentro do <head> de todas as páginas", None, False
    ),
    Platform(
        "wordpress",
        "WordPress / Elementor (todas as páginas)",
        "WPCode → Header & Footer → Header, ou Elementor → Código personalizado → <head>",
        None,
        False,
    ),
    *(
        Platform(
            f"{gateway}_thank_you",
            f"{title} → sua própria página de obrigado",
            f"<head> da sua própria página de obrigado (HTML puro, ou Código personalizado do "
            f"WordPress/Elementor só nessa página), configurada como URL de redirecionamento nas "
            f"configurações do produto na {title}; o redirecionamento precisa levar o número do "
            "pedido (parâmetro order_id, transaction ou sale_id)",
            gateway,
            True,
        )
        for gateway, title in (
            ("kiwify", "Kiwify"),
            ("hotmart", "Hotmart"),
            ("perfectpay", "Perfect Pay"),
            ("eduzz", "Eduzz"),
            ("cakto", "Cakto"),
        )
    ),
)


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


def gtm_snippet(public_id: str) -> str:
    container = json.dumps(public_id)
    return (
        "<!-- Google Tag Manager -->\n"
        "<script>(function(w,d,s,l,i){w[l]=w[l]||[];w[l].push({'gtm.start':"
        "new Date().getTime(),event:'gtm.js'});var f=d.getElementsByTagName(s)[0],"
        "j=d.createElement(s),dl=l!='dataLayer'?'&l='+l:'';j.async=true;j.src="
        "'https://www.googletagmanager.com/gtm.js?id='+i+dl;f.parentNode.insertBefore(j,f);"
        f"}})(window,document,'script','dataLayer',{container});</script>\n"
        "<!-- End Google Tag Manager -->"
    )


def tracking_script(data: SnippetInput, gateway: str | None) -> str:
    attrs = [
        f'src="{_attr(data.script_url)}"',
        f'data-tenant="{_attr(data.tenant_id)}"',
        f'data-funnel="{_attr(data.funnel_slug)}"',
    ]
    if data.checkout_domains:
        attrs.append(f'data-checkout-domains="{_attr(",".join(data.checkout_domains))}"')
    if gateway:
        attrs.append(f'data-gateway="{_attr(gateway)}"')
    # Blocking on thank-you pages: the Purchase block below needs window.trackai at once.
    return f"<script {' '.join(attrs)}{'' if gateway else ' async'}></script>"


def purchase_block(data: SnippetInput) -> str:
    """Meta pixel Purchase with the shared event id, plus the dataLayer event for GTM."""
    config = json.dumps(
        {
            "pixel": data.pixel_id,
            "order": list(ORDER_PARAMS),
            "value": list(VALUE_PARAMS),
            "currency": list(CURRENCY_PARAMS),
            "defaultCurrency": data.default_currency,
        }
    )
    return (
        "<!-- Meta Pixel: Purchase with Track AI's shared event id -->\n"
        "<script>\n"
        "!function(w,d){if(w.fbq)return;var n=w.fbq=function(){n.callMethod?"
        "n.callMethod.apply(n,arguments):n.queue.push(arguments)};if(!w._fbq)w._fbq=n;"
        "n.push=n;n.loaded=!0;n.version='2.0';n.queue=[];var s=d.createElement('script');"
        "s.async=!0;s.src='https://connect.facebook.net/en_US/fbevents.js';"
        "var f=d.getElementsByTagName('script')[0];f.parentNode.insertBefore(s,f)}"
        "(window,document);\n"
        "(function (c) {\n"
        "  var q = new URLSearchParams(window.location.search);\n"
        "  function pick(names) { for (var i = 0; i < names.length; i++) {"
        " var v = q.get(names[i]); if (v) return v; } return null; }\n"
        "  var orderId = pick(c.order);\n"
        "  var vid = window.trackai && window.trackai.visitorId;\n"
        "  fbq('init', c.pixel, vid ? {external_id: vid} : {});\n"
        "  if (!orderId || !window.trackai) return;\n"
        "  var value = parseFloat(pick(c.value) || '0');\n"
        "  var currency = (pick(c.currency) || c.defaultCurrency).toUpperCase();\n"
        "  Promise.resolve(window.trackai.eventId(orderId, 'Purchase')).then(function (id) {\n"
        "    fbq('track', 'Purchase', {value: value, currency: currency}, {eventID: id});\n"
        "    (window.dataLayer = window.dataLayer || []).push({event: 'trackai_purchase',"
        " event_id: id, transaction_id: orderId, value: value, currency: currency});\n"
        "  });\n"
        f"}})({config});\n"
        "</script>"
    )


def render(platform: Platform, data: SnippetInput) -> str:
    parts = [
        f"<!-- Track AI ({platform.title}): {platform.where} -->",
        gtm_snippet(data.gtm_public_id),
        tracking_script(data, platform.gateway if platform.thank_you else None),
    ]
    if platform.thank_you:
        parts.append(purchase_block(data))
    return "\n".join(parts) + "\n"


def render_all(data: SnippetInput) -> list[dict[str, str]]:
    """Every platform's snippet, as stored on the run and returned by the API."""
    return [
        {"platform": p.key, "title": p.title, "where": p.where, "content": render(p, data)}
        for p in PLATFORMS
    ]
