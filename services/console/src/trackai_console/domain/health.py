"""What needs the seller's action, in Brazilian Portuguese with the concrete fix: a destination's
breaker, webhooks refused for a wrong credential, the dead-letter queue, EMQ and the coverage of
each customer-information parameter. Pure logic, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from trackai_console.domain.wizard import GATEWAY_NAMES

SAO_PAULO = ZoneInfo("America/Sao_Paulo")


@dataclass(frozen=True)
class Banner:
    message: str
    fix: str
    link: str


@dataclass(frozen=True)
class DestinationHealth:
    """One Meta destination (a tenant's pixel) as the dispatcher reports it."""

    tenant_id: str
    pixel_id: str
    breaker: str  # "closed", "open", "half_open"
    consecutive_failures: int
    last_code: int
    reason: str
    opened_at: datetime | None
    probe_at: datetime | None
    dead_letters: int

    @property
    def delivering(self) -> bool:
        return self.breaker == "closed"


BREAKER_LABELS: Mapping[str, str] = {
    "closed": "Enviando normalmente",
    "open": "Envio pausado (disjuntor aberto)",
    "half_open": "Testando se a Meta voltou a aceitar",
}
#: Meta's "invalid OAuth access token" code: the seller has to replace the token.
TOKEN_ERROR = 190


def _local(value: datetime | None) -> str:
    return value.astimezone(SAO_PAULO).strftime("%d/%m %H:%M") if value else ""


def breaker_banner(destination: DestinationHealth) -> Banner | None:
    """A banner while the destination is not delivering; its fix depends on why it opened."""
    if destination.delivering:
        return None
    since = f" desde {_local(destination.opened_at)}" if destination.opened_at else ""
    reason = destination.reason.strip().rstrip(".")
    cause = f" Resposta da Meta: “{reason}”." if reason else ""
    message = (
        f"O envio de vendas para a Meta (pixel {destination.pixel_id}) está pausado{since}." + cause
    )
    if destination.last_code == TOKEN_ERROR:
        return Banner(
            message,
            "O token da API de Conversões expirou ou foi revogado: gere um novo no Gerenciador "
            "de Eventos da Meta (Configurações do pixel → API de Conversões → Gerar token) e "
            "salve-o na etapa “Pixel e token do Meta”. As vendas retidas são enviadas quando "
            "o envio voltar; nenhuma é perdida.",
            "/configuracao/meta",
        )
    retry = (
        f" A próxima tentativa é às {_local(destination.probe_at)}." if destination.probe_at else ""
    )
    return Banner(
        message,
        "A Meta está recusando ou não está respondendo; o Track AI tenta de novo sozinho e "
        "envia as vendas retidas quando ela voltar, sem perder nenhuma." + retry + " Se "
        "continuar por mais de uma hora, confira o status da Meta e fale com o suporte.",
        "/eventos?status=failed",
    )


def dead_letters_banner(count: int, more: bool) -> Banner | None:
    if not count:
        return None
    return Banner(
        f"{count}{'+' if more else ''} evento(s) na fila de falhas: a Meta ainda não os recebeu.",
        "Veja o motivo de cada um, corrija e reenvie (até 7 dias após a venda).",
        "/dlq",
    )


@dataclass(frozen=True)
class CredentialRefusal:
    """Webhooks of one gateway refused with 401 because one credential did not match."""

    gateway: str
    credential: str
    count: int
    last_at: datetime


#: Which credential did not match, and where the seller finds the right one.
CREDENTIAL_FIXES: Mapping[str, tuple[str, str]] = {
    "kiwify_signature": (
        "a assinatura não confere com o token salvo",
        "copie o token do webhook no painel da Kiwify (Apps → Webhooks)",
    ),
    "hotmart_hottok": (
        "o hottok não confere",
        "copie o Hottok em Ferramentas → Webhook (API e notificações) da Hotmart",
    ),
    "eduzz_signature": (
        "a assinatura não confere com a chave salva",
        "copie a chave de assinatura em Configurações → Webhook da Eduzz",
    ),
    "perfectpay_token": (
        "o token não confere",
        "copie o token em Ferramentas → Webhooks da Perfect Pay",
    ),
    "cakto_secret": (
        "o segredo não confere",
        "copie o segredo do webhook em Integrações → Webhooks da Cakto",
    ),
    "monetizze_chave_unica": (
        "a chave única não confere",
        "copie a chave única em Ferramentas → Postback da Monetizze (acima da lista)",
    ),
    "braip_basic_authentication": (
        "a chave de autenticação não confere",
        "copie a chave única (basic authentication) em Ferramentas → Postback da Braip",
    ),
    "ticto_token": (
        "o token não confere",
        "copie o token do webhook em Integrações → Webhook da Ticto",
    ),
    "greenn_token": (
        "o token não confere",
        "a Greenn não gera token: use o mesmo segredo salvo aqui no campo ou cabeçalho "
        "`token` do webhook",
    ),
    "x_signature": (
        "a assinatura (X-Signature) não confere",
        "copie o segredo do webhook no painel do seu checkout",
    ),
}


def gateway_name(gateway: str) -> str:
    return GATEWAY_NAMES.get(gateway, gateway)


def refusal_banner(refusal: CredentialRefusal) -> Banner:
    what, where = CREDENTIAL_FIXES.get(
        refusal.credential,
        ("a credencial não confere", "copie o segredo do webhook no painel do seu checkout"),
    )
    name = gateway_name(refusal.gateway)
    return Banner(
        f"{refusal.count} webhook(s) da {name} recusado(s) na última hora (erro 401): {what}. "
        "Essas vendas não foram registradas.",
        f"Para corrigir, {where} e salve-o na etapa “Checkout e webhook” (o campo do segredo "
        "aceita colar o valor novo). A plataforma reenvia os webhooks recusados.",
        "/configuracao/checkout",
    )


@dataclass(frozen=True)
class Parameter:
    key: str  # Meta's user_data key
    label: str
    #: Share of events below which the overview warns; None: shown, never warned about.
    target: float | None
    advice: str


#: The customer-information parameters Meta matches on, in the order the quality page lists them.
PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "em",
        "E-mail",
        0.9,
        "Deixe o e-mail obrigatório no checkout; o gateway o envia no webhook.",
    ),
    Parameter(
        "ph",
        "Telefone",
        0.6,
        "Peça o telefone (com DDD) no checkout.",
    ),
    Parameter("fn", "Nome", None, "Peça o nome completo no checkout."),
    Parameter("ln", "Sobrenome", None, "Peça o nome completo no checkout."),
    Parameter("ct", "Cidade", None, "Peça o endereço quando o produto permitir."),
    Parameter("st", "Estado", None, "Peça o endereço quando o produto permitir."),
    Parameter("zp", "CEP", None, "Peça o endereço quando o produto permitir."),
    Parameter("country", "País", None, "Enviado quando o gateway informa o país."),
    Parameter("db", "Data de nascimento", None, "Enviada quando o gateway a informa."),
    Parameter("ge", "Gênero", None, "Enviado quando o gateway o informa."),
    Parameter(
        "external_id",
        "Identificador do cliente (external_id)",
        None,
        "Enviado quando a venda é ligada a um visitante identificado pelo script.",
    ),
    Parameter(
        "client_ip_address",
        "Endereço IP",
        0.5,
        "Instale o script do Track AI em todas as páginas do funil: ele registra o IP e o "
        "navegador de quem clicou no anúncio.",
    ),
    Parameter(
        "client_user_agent",
        "Navegador (user agent)",
        0.5,
        "Instale o script do Track AI em todas as páginas do funil.",
    ),
    Parameter(
        "fbc",
        "Clique do anúncio (fbc)",
        None,
        "Vem do fbclid do anúncio: mantenha os parâmetros de URL dos anúncios e o script "
        "nas páginas de entrada.",
    ),
    Parameter(
        "fbp",
        "Navegador da Meta (fbp)",
        0.5,
        "Vem do cookie _fbp: instale o script do Track AI e passe o sck/src para o checkout.",
    ),
)
#: Fewer events than this make a share too noisy to warn about.
MIN_EVENTS_FOR_ADVICE = 10


@dataclass(frozen=True)
class CoverageRow:
    parameter: Parameter
    events: int
    share: float  # 0..1

    @property
    def low(self) -> bool:
        target = self.parameter.target
        return target is not None and self.share < target


@dataclass(frozen=True)
class Coverage:
    events: int
    carried: Mapping[str, int]

    def rows(self) -> list[CoverageRow]:
        total = self.events or 1
        return [
            CoverageRow(p, self.carried.get(p.key, 0), self.carried.get(p.key, 0) / total)
            for p in PARAMETERS
        ]

    def low(self) -> list[CoverageRow]:
        if self.events < MIN_EVENTS_FOR_ADVICE:
            return []
        return [row for row in self.rows() if row.low]


def percent(share: float) -> str:
    return f"{round(share * 100)}%"


def coverage_banner(coverage: Coverage) -> Banner | None:
    low = coverage.low()
    if not low:
        return None
    listed = ", ".join(f"{row.parameter.label.lower()} em {percent(row.share)}" for row in low)
    return Banner(
        f"Faltam dados do comprador nas vendas enviadas à Meta nos últimos 7 dias: {listed}.",
        low[0].parameter.advice,
        "/emq",
    )
