"""The ``validate_gateway_webhook`` verdict: where each gateway's webhook URL and secret go, and
what the webhooks received since setup began say."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from trackai_agent.domain.model import (
    ToolResult,
    WebhookActivity,
)
from trackai_agent.domain.verdicts.text import full_date, upper_first

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
    "monetizze": (
        "Monetizze",
        "Monetizze → Ferramentas → Postback → Adicionar: cole a URL; a chave única da conta "
        "aparece acima da lista",
    ),
    "braip": (
        "Braip",
        "Braip → Ferramentas → Postback → Novo postback: cole a URL; a chave única (basic "
        "authentication) aparece na mesma tela",
    ),
    "ticto": (
        "Ticto",
        "Ticto → Integrações → Webhook → Adicionar: cole a URL e copie o token do webhook",
    ),
    "greenn": (
        "Greenn",
        "Greenn → Configurações → Webhooks → Adicionar: cole a URL e ponha no campo token o "
        "segredo salvo aqui (a Greenn não gera um)",
    ),
}


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
    "monetizze_chave_unica": (
        "a chave única da Monetizze",
        "Monetizze → Ferramentas → Postback → chave única (acima da lista)",
    ),
    "braip_basic_authentication": (
        "a chave única da Braip",
        "Braip → Ferramentas → Postback → chave única (basic authentication)",
    ),
    "ticto_token": ("o token do webhook da Ticto", "Ticto → Integrações → Webhook → token"),
    "greenn_token": (
        "o token do webhook da Greenn",
        "Greenn → Configurações → Webhooks → (seu webhook) → token: o segredo salvo aqui",
    ),
}


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
        when = f" (último em {full_date(last)})" if last else ""
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
        f"Nenhum webhook verificado chegou desde {full_date(since)}; sem ele as vendas não são "
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
    when = f" (último em {full_date(last)})" if last else ""
    return ToolResult(
        "error",
        "Webhooks chegaram, mas foram recusados: " + "; ".join(found) + f"{when}. Sem webhook "
        "aceito a configuração fica bloqueada (provisionamento e publicação).",
        upper_first("; ".join(fixes)) + ".",
        {
            "reason": "credential_mismatch",
            "blocks_setup": True,
            "refused": {a.gateway: a.refused for a in refused},
        },
    )
