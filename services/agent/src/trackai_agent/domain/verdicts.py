"""The six tools' verdicts, from what the adapters observed to a specific Portuguese message and
the concrete next step. Pure functions: every branch is unit-tested without I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit

from trackai_agent.domain.model import (
    FetchedPage,
    PixelRead,
    Snippet,
    TestEventSent,
    TokenDebug,
    ToolResult,
    WebhookActivity,
)
from trackai_agent.domain.pagescan import PageScan

#: Brazil has had no daylight saving time since 2019: Brasília time is UTC-3 all year.
BRT = timezone(timedelta(hours=-3))
REQUIRED_SCOPES = ("ads_management", "business_management")
EXPIRY_WARNING_DAYS = 7
SUBCODE_EXPIRED = 463
SUBCODE_INVALIDATED = 460
#: Instructions for a new token (not a credential).
HOW_TO_RENEW = (
    "gere um novo token no Meta Business Suite em Configurações do negócio → Usuários do sistema "
    "→ Gerar novo token (app {app}) com as permissões ads_management e business_management, e "
    'cole em Track AI → Configuração → Meta → campo "Token de acesso"'
)
TRACKING_PARAMS = ("fbclid", "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
TTFB_SLOW_MS = 1500.0
TLS_WARNING_DAYS = 14

#: Where each gateway's webhook URL and secret go, in the gateway's own (Portuguese) panel.
GATEWAY_PANELS: dict[str, tuple[str, str]] = {
    "kiwify": ("Kiwify", "Kiwify → Apps → Webhooks → Criar webhook: cole a URL e copie o Token"),
    "hotmart": (
        "Hotmart",
        "Hotmart → Ferramentas → Webhook (API e notificações) → Cadastrar webhook: cole a URL; o "
        "Hottok fica na mesma tela",
    ),
    "eduzz": (
        "Eduzz",
        "Eduzz → Console do desenvolvedor → Webhooks → Novo webhook: cole a URL e copie o "
        "segredo de assinatura",
    ),
    "perfectpay": (
        "Perfect Pay",
        "Perfect Pay → Ferramentas → Webhook → Adicionar: cole a URL; o token de 32 caracteres "
        "aparece na mesma tela",
    ),
    "cakto": (
        "Cakto",
        "Cakto → Integrações → Webhooks → Adicionar: cole a URL e copie o segredo do webhook",
    ),
}


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


#: What each credential a gateway webhook is checked with is called, and where its value is.
CREDENTIALS: dict[str, tuple[str, str]] = {
    "kiwify_signature": (
        "o token do webhook da Kiwify",
        "Kiwify → Apps → Webhooks → (seu webhook) → Token",
    ),
    "hotmart_hottok": (
        "o Hottok da Hotmart",
        "Hotmart → Ferramentas → Webhook (API e notificações) → Hottok",
    ),
    "eduzz_signature": (
        "o segredo de assinatura da Eduzz",
        "Eduzz → Console do desenvolvedor → Webhooks → segredo de assinatura",
    ),
    "perfectpay_token": (
        "o token da Perfect Pay",
        "Perfect Pay → Ferramentas → Webhook → token de 32 caracteres",
    ),
    "cakto_secret": ("o segredo do webhook da Cakto", "Cakto → Integrações → Webhooks → segredo"),
}


def day_month(moment: datetime) -> str:
    return moment.astimezone(BRT).strftime("%d/%m")


def _full_date(moment: datetime) -> str:
    return moment.astimezone(BRT).strftime("%d/%m/%Y %H:%M")


# --- validate_meta_token ------------------------------------------------------------------------
def meta_token_verdict(  # noqa: PLR0911 - one answer per failure Meta distinguishes
    debug: TokenDebug,
    pixel: PixelRead | None,
    *,
    pixel_id: str,
    expected_app_id: str,
    now: datetime,
) -> ToolResult:
    """Expired, invalidated, unreadable, other app, missing scope, pixel out of reach, or valid."""
    app = debug.application or debug.app_id or "do Track AI"
    new_token = HOW_TO_RENEW.format(app=app)
    expires = datetime.fromtimestamp(debug.expires_at, UTC) if debug.expires_at else None
    details: dict[str, object] = {
        "app_id": debug.app_id,
        "type": debug.type,
        "scopes": list(debug.scopes),
        "expires_at": expires.isoformat() if expires else None,
        "pixel_id": pixel_id,
    }
    if not debug.is_valid:
        if debug.error_subcode == SUBCODE_EXPIRED or "expired" in debug.error_message:
            when = f" em {day_month(expires)}" if expires else ""
            return ToolResult(
                "error",
                f"O token do Meta expirou{when}.",
                _upper_first(new_token) + ".",
                {**details, "reason": "expired"},
            )
        if debug.error_subcode == SUBCODE_INVALIDATED:
            return ToolResult(
                "error",
                "O token do Meta foi invalidado: a senha do usuário mudou ou o Meta encerrou a "
                "sessão por segurança.",
                _upper_first(new_token) + " (prefira um usuário do sistema, que não expira).",
                {**details, "reason": "invalidated"},
            )
        return ToolResult(
            "error",
            "O valor salvo como token do Meta não é um token de acesso (o Meta não conseguiu "
            "lê-lo); talvez tenha sido colado o ID do pixel ou o segredo do app.",
            _upper_first(new_token) + '; o token começa com "EAA".',
            {**details, "reason": "unparseable"},
        )
    if expected_app_id and debug.app_id != expected_app_id:
        return ToolResult(
            "error",
            f'O token pertence ao app "{app}" ({debug.app_id}), não ao app do Track AI '
            f"({expected_app_id}).",
            "No Meta Business Suite → Configurações do negócio → Usuários do sistema, gere o "
            f"token escolhendo o app {expected_app_id} na lista de apps, com as permissões "
            "ads_management e business_management, e cole em Track AI → Configuração → Meta → "
            'campo "Token de acesso".',
            {**details, "reason": "wrong_app", "expected_app_id": expected_app_id},
        )
    missing = [s for s in REQUIRED_SCOPES if s not in debug.scopes]
    if missing:
        return ToolResult(
            "error",
            f"O token não tem a permissão {' e '.join(missing)} (tem: "
            f"{', '.join(debug.scopes) or 'nenhuma'}).",
            "Gere um novo token em Configurações do negócio → Usuários do sistema → Gerar novo "
            f"token marcando {' e '.join(missing)} (além de ads_management e "
            'business_management), e cole em Track AI → Configuração → Meta → campo "Token de '
            'acesso".',
            {**details, "reason": "missing_scope", "missing_scopes": missing},
        )
    if pixel is not None and not pixel.readable:
        if pixel.error_code == 100:
            return ToolResult(
                "error",
                f"O token é válido, mas não enxerga o pixel {pixel_id}: ele pertence a outra "
                "empresa (Business Manager) ou o ID está errado.",
                f"Em Configurações do negócio → Fontes de dados → Conjuntos de dados (pixels), "
                f"confira o ID {pixel_id}; se ele é de outra empresa, peça ao dono para "
                "compartilhá-lo com a sua (Atribuir parceiros), e depois adicione o usuário do "
                "sistema ao pixel com controle total.",
                {**details, "reason": "pixel_not_accessible"},
            )
        return ToolResult(
            "error",
            f"O Meta recusou a leitura do pixel {pixel_id}: {pixel.error_message}",
            "Tente de novo em alguns minutos; se persistir, confira o pixel em Configurações do "
            "negócio → Fontes de dados.",
            {**details, "reason": "pixel_error", "error_code": pixel.error_code},
        )
    pixel_name = f'"{pixel.name}" ({pixel_id})' if pixel and pixel.name else pixel_id
    expiry_text = f"expira em {day_month(expires)}" if expires else "não expira"
    message = (
        f'Token válido: tipo {debug.type or "desconhecido"}, app "{app}", {expiry_text}, '
        f"permissões {', '.join(debug.scopes)}; o pixel {pixel_name} pode ser lido com ele."
    )
    if expires and expires - now < timedelta(days=EXPIRY_WARNING_DAYS):
        return ToolResult(
            "warning",
            message + f" Mas ele expira em {day_month(expires)}, em menos de "
            f"{EXPIRY_WARNING_DAYS} dias.",
            _upper_first(new_token) + " (um token de usuário do sistema não expira).",
            {**details, "reason": "expires_soon"},
        )
    return ToolResult(
        "ok", message, "Nada a fazer no token; siga para o webhook do checkout.", details
    )


# --- validate_gateway_webhook ------------------------------------------------------------------
def webhook_url(ingestion_public_url: str, gateway: str, tenant_id: str) -> str:
    return f"{ingestion_public_url.rstrip('/')}/api/v1/webhooks/{gateway}/{tenant_id}"


def gateway_webhook_verdict(
    activity: Sequence[WebhookActivity],
    *,
    gateways: Sequence[str],
    tenant_id: str,
    ingestion_public_url: str,
    since: datetime,
) -> ToolResult:
    """Ok once any configured gateway delivered a verified webhook since ``since``."""
    if not gateways:
        return ToolResult(
            "error",
            "Nenhum checkout está cadastrado para esta conta, então nenhum webhook pode ser "
            "verificado.",
            "Em Track AI → Configuração → Checkouts, escolha a plataforma (Kiwify, Hotmart, "
            "Eduzz, Perfect Pay ou Cakto) e cole o token ou segredo do webhook dela.",
            {"reason": "no_gateway", "blocks_setup": True},
        )
    arrived = [a for a in activity if a.verified > 0]
    if arrived:
        last = max((a.last_received for a in arrived if a.last_received), default=None)
        names = ", ".join(GATEWAY_PANELS.get(a.gateway, (a.gateway, ""))[0] for a in arrived)
        when = f" (último em {_full_date(last)})" if last else ""
        return ToolResult(
            "ok",
            f"Webhook verificado recebido de {names}: {sum(a.verified for a in arrived)} "
            f"desde o início da configuração{when}.",
            "Nada a fazer nos webhooks; a configuração está liberada para seguir.",
            {
                "reason": "verified",
                "blocks_setup": False,
                "verified": {a.gateway: a.verified for a in arrived},
                "by_outcome": {a.gateway: a.by_outcome for a in arrived},
            },
        )
    refused = [a for a in activity if a.refused]
    if refused:
        return _mismatch_verdict(refused)
    steps = []
    urls = {}
    for gateway in gateways:
        title, panel = GATEWAY_PANELS.get(gateway, (gateway, f"no painel da {gateway}"))
        url = webhook_url(ingestion_public_url, gateway, tenant_id)
        urls[gateway] = url
        steps.append(
            f"{title}: {panel}. URL: {url} — o segredo vai em Track AI → Configuração → "
            f'Checkouts → {title}; depois clique em "Enviar teste" no painel da {title}'
        )
    return ToolResult(
        "error",
        f"Nenhum webhook verificado chegou desde {_full_date(since)}; sem ele as vendas não são "
        "registradas, então a configuração fica bloqueada (provisionamento e publicação).",
        " · ".join(steps) + ".",
        {"reason": "no_webhook", "blocks_setup": True, "webhook_urls": urls},
    )


def _mismatch_verdict(refused: Sequence[WebhookActivity]) -> ToolResult:
    """Webhooks arrived but were refused: name the credential and where the right value is."""
    found = []
    fixes = []
    for activity in refused:
        title = GATEWAY_PANELS.get(activity.gateway, (activity.gateway, ""))[0]
        for credential, count in sorted(activity.refused.items()):
            if credential == "x_signature":
                found.append(
                    f"{count} da {title} com a assinatura X-Signature errada (o segredo de "
                    "assinatura salvo no Track AI não é o usado por quem envia)"
                )
                fixes.append(
                    f"em Track AI → Configuração → Checkouts → {title}, apague o campo "
                    '"Segredo de assinatura" se você não usa um relay que assina, ou cole o '
                    "segredo que o relay usa"
                )
                continue
            name, where = CREDENTIALS.get(credential, (credential, f"o painel da {title}"))
            found.append(f"{count} da {title} recusado(s) porque {name} não confere")
            fixes.append(
                f"copie {name} em {where} e cole em Track AI → Configuração → Checkouts → "
                f'{title} → campo "Segredo"; depois clique em "Enviar teste" no painel'
            )
    last = max((a.last_refused for a in refused if a.last_refused), default=None)
    when = f" (último em {_full_date(last)})" if last else ""
    return ToolResult(
        "error",
        "Webhooks chegaram, mas foram recusados: " + "; ".join(found) + f"{when}. Sem webhook "
        "aceito a configuração fica bloqueada (provisionamento e publicação).",
        _upper_first("; ".join(fixes)) + ".",
        {
            "reason": "credential_mismatch",
            "blocks_setup": True,
            "refused": {a.gateway: a.refused for a in refused},
        },
    )


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


# --- send_test_capi_event / generate_tracking_snippet -------------------------------------------
def test_event_verdict(sent: TestEventSent) -> ToolResult:
    return ToolResult(
        "ok",
        f"Evento de teste Purchase enviado pela Conversions API com o código "
        f"{sent.test_event_code}: o Meta recebeu {sent.events_received} evento(s) "
        f"(event_id {sent.event_id}).",
        f"Abra o Gerenciador de Eventos → seu pixel → Eventos de teste, filtre pelo código "
        f"{sent.test_event_code} e confira o Purchase; a publicação já está liberada para "
        "aprovação em Track AI → Configuração → Revisão.",
        {
            "reason": "sent",
            "run_id": sent.run_id,
            "event_id": sent.event_id,
            "events_received": sent.events_received,
            "fbtrace_id": sent.fbtrace_id,
            "test_event_code": sent.test_event_code,
        },
    )


def snippets_verdict(snippets: Sequence[Snippet], platform: str) -> ToolResult:
    chosen = [s for s in snippets if not platform or s.platform == platform]
    if not chosen:
        known = ", ".join(s.platform for s in snippets)
        return ToolResult(
            "error",
            f'Não há código para a plataforma "{platform}" (há: {known}).',
            f"Escolha uma destas plataformas: {known}.",
            {"reason": "unknown_platform", "platforms": [s.platform for s in snippets]},
        )
    return ToolResult(
        "ok",
        "Código de rastreamento pronto: "
        + "; ".join(f"{s.title} → cole em {s.where}" for s in chosen)
        + ".",
        "Copie cada bloco no lugar indicado, publique a página e peça para eu verificar o pixel.",
        {
            "reason": "ok",
            "snippets": [
                {"platform": s.platform, "title": s.title, "where": s.where, "content": s.content}
                for s in chosen
            ],
        },
    )
