"""The ``probe_landing_url`` and ``check_pixel_presence`` verdicts: the landing page as a visitor
from an ad reaches it, and the pixel on it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

from trackai_agent.domain.model import (
    FetchedPage,
    ToolResult,
)
from trackai_agent.domain.pagescan import PageScan
from trackai_agent.domain.verdicts.text import day_month

TRACKING_PARAMS = ("fbclid", "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
TTFB_SLOW_MS = 1500.0
TLS_WARNING_DAYS = 14


# --- probe_landing_url -------------------------------------------------------------------------
def lost_tracking_params(start_url: str, final_url: str) -> list[str]:
    sent = {k for k, _ in parse_qsl(urlsplit(start_url).query) if k in TRACKING_PARAMS}
    kept = {k for k, _ in parse_qsl(urlsplit(final_url).query)}
    return sorted(sent - kept)


def landing_verdict(  # noqa: PLR0911 - one answer per finding, worst first
    page: FetchedPage, *, probe_url: str, our_script: bool, now: datetime
) -> ToolResult:
    """Status, TLS, redirects dropping fbclid/utm_*, speed and our script, worst finding first."""
    chain = " → ".join(f"{h.status} {h.url}" for h in page.hops)
    details: dict[str, object] = {
        "status": page.status,
        "final_url": page.final_url,
        "redirects": [
            {"url": h.url, "status": h.status, "location": h.location} for h in page.hops
        ],
        "ttfb_ms": round(page.ttfb_ms, 1),
        "our_script": our_script,
        "tls_valid": page.tls.valid if page.tls else None,
        "tls_not_after": page.tls.not_after.isoformat()
        if page.tls and page.tls.not_after
        else None,
    }
    if page.tls is not None and not page.tls.valid:
        expired = page.tls.not_after is not None and page.tls.not_after <= now
        what = (
            f"o certificado HTTPS expirou em {day_month(page.tls.not_after)}"
            if expired and page.tls.not_after
            else f"o certificado HTTPS não é válido ({page.tls.error})"
        )
        return ToolResult(
            "error",
            f"A página {probe_url} não abre com segurança: {what}; navegadores mostram um aviso "
            "e a maioria dos visitantes desiste.",
            "Renove o certificado no painel da sua hospedagem (por exemplo SSL/TLS → Let's "
            "Encrypt → Renovar, ou Cloudflare → SSL/TLS → Edge Certificates) e rode esta "
            "verificação de novo.",
            {**details, "reason": "tls_expired" if expired else "tls_invalid"},
        )
    if page.status >= 400:
        return ToolResult(
            "error",
            f"A página {page.final_url} respondeu HTTP {page.status}"
            + (f" (caminho: {chain})" if len(page.hops) > 1 else "")
            + ".",
            'Confira o endereço em Track AI → Configuração → Funil → campo "URL da página de '
            'vendas" e se a página está publicada na sua hospedagem.',
            {**details, "reason": "http_error"},
        )
    lost = lost_tracking_params(probe_url, page.final_url)
    if lost:
        return ToolResult(
            "error",
            f"Os redirecionamentos apagam {', '.join(lost)} da URL (caminho: {chain}); sem "
            "fbclid o Meta não liga a venda ao clique no anúncio.",
            "Use como destino do anúncio a URL final, sem redirecionamento "
            f"({page.final_url.split('?')[0]}), ou configure o redirecionamento para repassar "
            'a query string (no Cloudflare: Regras de redirecionamento → marcar "Preservar '
            'string de consulta").',
            {**details, "reason": "params_dropped", "dropped": lost},
        )
    if not our_script:
        return ToolResult(
            "warning",
            f"A página abre (HTTP {page.status}, primeiro byte em {page.ttfb_ms:.0f} ms) mas o "
            "script do Track AI (/sdk/v1/track.js) não está nela.",
            'Cole o código da etapa "Código de rastreamento" no <head> da página e publique; '
            "peça o código aqui se precisar.",
            {**details, "reason": "script_missing"},
        )
    if (
        page.tls is not None
        and page.tls.not_after
        and page.tls.not_after - now < timedelta(days=TLS_WARNING_DAYS)
    ):
        return ToolResult(
            "warning",
            f"A página está ok, mas o certificado HTTPS expira em {day_month(page.tls.not_after)}.",
            "Renove o certificado no painel da hospedagem antes dessa data.",
            {**details, "reason": "tls_expires_soon"},
        )
    if page.ttfb_ms > TTFB_SLOW_MS:
        return ToolResult(
            "warning",
            f"A página está ok mas lenta: primeiro byte em {page.ttfb_ms:.0f} ms.",
            "Ative cache na hospedagem (ou um CDN); páginas lentas perdem visitantes antes do "
            "pixel carregar.",
            {**details, "reason": "slow"},
        )
    return ToolResult(
        "ok",
        f"A página abre (HTTP {page.status}, primeiro byte em {page.ttfb_ms:.0f} ms), mantém "
        "fbclid e utm_* nos redirecionamentos e carrega o script do Track AI.",
        "Nada a fazer na página; siga para a verificação do pixel.",
        {**details, "reason": "ok"},
    )


# --- check_pixel_presence ----------------------------------------------------------------------
def pixel_verdict(
    scan: PageScan,
    *,
    pixel_id: str,
    url: str,
    rendered: bool,
    our_gtm: Sequence[str] = (),
) -> ToolResult:
    """Right pixel once (inline, or through the GTM web container the provisioner built with it),
    our script, eventID on Purchase; ``rendered`` when Chromium ran the page."""
    details = {
        **scan.as_details(),
        "expected_pixel_id": pixel_id,
        "rendered": rendered,
        "trackai_gtm": list(our_gtm),
    }
    how = " (depois de executar o JavaScript da página)" if rendered else ""
    via_gtm = [g for g in scan.gtm_containers if g in our_gtm]
    if pixel_id not in scan.pixel_ids and not via_gtm:
        other = [p for p in scan.pixel_ids if p != pixel_id]
        found = f"; encontrei o pixel {', '.join(other)}, que não é o configurado" if other else ""
        foreign_gtm = [g for g in scan.gtm_containers if g not in our_gtm]
        if foreign_gtm and our_gtm:
            found += (
                f"; o contêiner GTM {', '.join(foreign_gtm)} da página não é o do Track AI "
                f"({', '.join(our_gtm)})"
            )
        return ToolResult(
            "error",
            f"A página {url} não carrega o pixel {pixel_id}{how}{found}.",
            'Cole o código da etapa "Código de rastreamento" no <head> da página (ele carrega '
            "o contêiner GTM do Track AI, que dispara o pixel) ou, se o pixel certo é outro, "
            'corrija o ID em Track AI → Configuração → Meta → campo "ID do pixel".',
            {**details, "reason": "other_pixel" if other else "pixel_missing"},
        )
    if scan.duplicated_pixels:
        return ToolResult(
            "error",
            f"O pixel {', '.join(scan.duplicated_pixels)} é inicializado "
            f"{scan.pixel_ids.count(pixel_id)} vezes na página{how}: cada evento seria contado "
            "em dobro.",
            "Remova as cópias: mantenha só o código do Track AI e apague o pixel colado à mão "
            "ou o instalado por plugin (WordPress: PixelYourSite/Meta for WordPress → "
            "desativar).",
            {**details, "reason": "duplicated"},
        )
    if scan.purchase_events and scan.purchase_with_event_id < scan.purchase_events:
        return ToolResult(
            "error",
            "O evento Purchase da página é enviado sem eventID, então o Meta não consegue "
            "deduplicar com a Conversions API e conta a venda duas vezes.",
            'Troque o código da página de obrigado pelo da etapa "Código de rastreamento" '
            '(plataforma "… → sua página de obrigado"), que passa eventID.',
            {**details, "reason": "purchase_without_event_id"},
        )
    if not scan.our_script:
        return ToolResult(
            "warning",
            f"O pixel {pixel_id} está na página{how}, mas o script do Track AI não.",
            'Cole o código da etapa "Código de rastreamento" no <head> da página.',
            {**details, "reason": "script_missing"},
        )
    gtm = f", contêiner GTM {', '.join(scan.gtm_containers)}" if scan.gtm_containers else ""
    where = (
        f"é carregado pelo contêiner GTM {', '.join(via_gtm)} do Track AI"
        if pixel_id not in scan.pixel_ids
        else f"está na página uma vez{how}"
    )
    return ToolResult(
        "ok",
        f"O pixel {pixel_id} {where}, com o script do Track AI{gtm}.",
        "Nada a fazer no pixel; siga para o evento de teste.",
        {**details, "reason": "ok"},
    )
