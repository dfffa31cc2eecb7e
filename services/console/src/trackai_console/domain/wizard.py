"""The setup wizard: its steps, what each form accepts (with pt-BR messages), and how the
provisioner's saga steps read for a seller. The wizard's position is stored by the console
(closed and resumed from the backend); everything else is read from the owners' APIs."""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

#: The wizard's steps in order: URL slug -> title shown to the seller.
STEPS: dict[str, str] = {
    "empresa": "Empresa e funil",
    "checkout": "Checkout e webhook",
    "meta": "Pixel e token do Meta",
    "provisionamento": "Provisionamento",
    "codigo": "Código da página",
    "teste": "Evento de teste",
    "publicar": "Revisão e publicação",
}
STEP_KEYS = tuple(STEPS)

#: Checkout platforms the wizard offers (ingestion's gateway keys) with their names.
GATEWAY_NAMES: dict[str, str] = {
    "kiwify": "Kiwify",
    "hotmart": "Hotmart",
    "eduzz": "Eduzz",
    "perfectpay": "Perfect Pay",
    "cakto": "Cakto",
    "monetizze": "Monetizze",
    "braip": "Braip",
    "ticto": "Ticto",
    "greenn": "Greenn",
}

#: The provisioner's saga steps grouped by the provider a seller recognises.
PROVIDERS: dict[str, str] = {
    "meta": "Meta",
    "cloudflare": "Cloudflare",
    "stape": "Stape",
    "gtm": "Google Tag Manager",
    "snippets": "Código da página",
}
SAGA_STEP_LABELS: dict[str, str] = {
    "validate_meta": "Validar pixel e token do Meta",
    "gtm_server_container": "Criar o contêiner de servidor do GTM",
    "stape_container": "Criar o servidor de rastreamento na Stape",
    "stape_running": "Aguardar o servidor da Stape ficar no ar",
    "stape_domain": "Ligar o domínio próprio na Stape",
    "cloudflare_cname": "Criar o registro DNS (CNAME) na Cloudflare",
    "stape_domain_validation": "Aguardar a Stape validar o domínio",
    "gtm_server_workspace": "Configurar o contêiner de servidor do GTM",
    "gtm_web_container": "Criar o contêiner web do GTM",
    "gtm_web_workspace": "Configurar o contêiner web do GTM",
    "gtm_versions": "Criar as versões do GTM para revisão",
    "snippets": "Gerar o código para a sua página",
}
STEP_STATUS_LABELS: dict[str, str] = {
    "pending": "Na fila",
    "running": "Em andamento",
    "succeeded": "Concluído",
    "skipped": "Já estava pronto",
    "failed": "Falhou",
    "rolling_back": "Desfazendo",
    "rolled_back": "Desfeito",
}
RUN_STATUS_LABELS: dict[str, str] = {
    "": "Não iniciado",
    "running": "Em andamento",
    "awaiting_approval": "Pronto para revisão",
    "published": "Publicado",
    "failed": "Falhou",
    "rolled_back": "Desfeito",
    "publish_rolled_back": "Publicação desfeita",
}

#: pt-BR messages of the Meta token field.
MISSING_META_KEY = (
    "Cole o token de acesso da API de Conversões (Gerenciador de Eventos → Configurações → "
    "Gerar token de acesso)."
)
PARTIAL_META_KEY = "O token parece incompleto: copie-o inteiro, sem espaços."
_PIXEL = re.compile(r"^\d{5,20}$")
_TEST_CODE = re.compile(r"^TEST\w{1,30}$")
_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class FormErrors(ValueError):
    """A form the wizard refuses: one pt-BR message per field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def provider_of(step: str) -> str:
    if step.startswith("validate_meta"):
        return "meta"
    return step.split("_", 1)[0] if step.split("_", 1)[0] in PROVIDERS else "snippets"


def slugify(name: str) -> str:
    """A funnel slug from its name: ``Lançamento de Março`` -> ``lancamento-de-marco``."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")
    return slug[:50].strip("-") or "funil"


@dataclass(frozen=True)
class CompanyForm:
    company: str
    funnel: str
    landing_url: str
    checkout_domains: tuple[str, ...]

    @classmethod
    def parse(cls, company: str, funnel: str, landing_url: str, domains: str) -> CompanyForm:
        errors: dict[str, str] = {}
        company, funnel, landing_url = company.strip(), funnel.strip(), landing_url.strip()
        if not 2 <= len(company) <= 100:
            errors["empresa"] = "Informe o nome da empresa (de 2 a 100 caracteres)."
        if not 2 <= len(funnel) <= 80:
            errors["funil"] = "Dê um nome ao funil (de 2 a 80 caracteres), ex.: Curso de Março."
        parts = urlsplit(landing_url)
        if parts.scheme != "https" or not parts.hostname or not _HOST.match(parts.hostname):
            errors["pagina"] = (
                "Informe o endereço completo da página de vendas, começando com https:// "
                "(ex.: https://seudominio.com.br/curso)."
            )
        hosts = tuple(
            dict.fromkeys(h.strip().lower() for h in re.split(r"[\s,]+", domains) if h.strip())
        )
        bad = [h for h in hosts if not _HOST.match(h)]
        if bad:
            errors["dominios"] = (
                f"Domínio inválido: {bad[0]}. Use só o domínio, sem https:// "
                "(ex.: pay.kiwify.com.br)."
            )
        if errors:
            raise FormErrors(errors)
        return cls(company, funnel, landing_url, hosts)


@dataclass(frozen=True)
class GatewayForm:
    gateway: str
    secret: str

    @classmethod
    def parse(cls, gateway: str, secret: str, *, stored: bool) -> GatewayForm:
        errors: dict[str, str] = {}
        if gateway not in GATEWAY_NAMES:
            errors["gateway"] = "Escolha a plataforma de checkout."
        secret = secret.strip()
        if not secret and not stored:
            errors["segredo"] = (
                "Cole o token ou segredo do webhook da plataforma (ele fica salvo "
                "criptografado e nunca é mostrado de volta)."
            )
        elif secret and (len(secret) < 6 or any(c.isspace() for c in secret)):
            errors["segredo"] = "O segredo deve ter pelo menos 6 caracteres e nenhum espaço."
        if errors:
            raise FormErrors(errors)
        return cls(gateway, secret)


@dataclass(frozen=True)
class MetaForm:
    pixel_id: str
    token: str
    test_event_code: str

    @classmethod
    def parse(cls, pixel_id: str, token: str, test_code: str, *, stored: bool) -> MetaForm:
        errors: dict[str, str] = {}
        pixel_id, token, test_code = pixel_id.strip(), token.strip(), test_code.strip().upper()
        if not _PIXEL.match(pixel_id):
            errors["pixel"] = (
                "O ID do pixel tem só números (Gerenciador de Eventos → seu pixel → Configurações)."
            )
        if not token and not stored:
            errors["token"] = MISSING_META_KEY
        elif token and (len(token) < 10 or any(c.isspace() for c in token)):
            errors["token"] = PARTIAL_META_KEY
        if not _TEST_CODE.match(test_code):
            errors["codigo_teste"] = (
                "Informe o código de evento de teste, ex.: TEST12345 (Gerenciador de Eventos → "
                "seu pixel → Eventos de teste)."
            )
        if errors:
            raise FormErrors(errors)
        return cls(pixel_id, token, test_code)


@dataclass
class WizardRecord:
    """The console's own record of a tenant's wizard (``console.setup_wizards``)."""

    tenant_id: uuid.UUID
    step: str
    started_at: datetime
    funnel_slug: str = ""
    gateway: str = ""
    run_id: str = ""
    approved_by: uuid.UUID | None = None
    approved_at: datetime | None = None


@dataclass(frozen=True)
class Check:
    """A verdict of the agent's tools (validate_meta_token, validate_gateway_webhook)."""

    status: str
    message: str
    action: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class SagaStep:
    name: str
    status: str
    detail: str

    @property
    def label(self) -> str:
        return SAGA_STEP_LABELS.get(self.name, self.name)

    @property
    def status_label(self) -> str:
        return STEP_STATUS_LABELS.get(self.status, self.status)

    @property
    def provider(self) -> str:
        return PROVIDERS[provider_of(self.name)]


@dataclass(frozen=True)
class Snippet:
    platform: str
    title: str
    where: str
    content: str


@dataclass(frozen=True)
class Run:
    """A provisioning run as the wizard shows it (GetProvisioningRun)."""

    id: str
    status: str
    steps: tuple[SagaStep, ...]
    error: str = ""
    snippets: tuple[Snippet, ...] = ()
    custom_domain: str = ""
    gtm_version_id: str = ""
    test_event_id: str = ""
    test_event_time: datetime | None = None
    approved_by: str = ""
    approve_time: datetime | None = None

    @property
    def status_label(self) -> str:
        return RUN_STATUS_LABELS.get(self.status, self.status)

    @property
    def ready(self) -> bool:
        return self.status in ("awaiting_approval", "published")

    @property
    def finished(self) -> bool:
        return self.status not in ("running", "")


@dataclass(frozen=True)
class TestEvent:
    event_id: str
    events_received: int
    test_event_code: str


@dataclass(frozen=True)
class Setup:
    """What the registry knows of a tenant, secrets masked (GetMaskedCredentials)."""

    tenant_name: str
    funnel_slug: str
    funnel_name: str
    landing_url: str
    checkout_domains: tuple[str, ...]
    test_event_code: str
    #: gateway -> last 4 characters of its secret ("" when shorter than 12).
    gateways: dict[str, str]
    pixel_id: str
    token_last4: str
    meta_stored: bool


def next_step(step: str) -> str:
    index = STEP_KEYS.index(step)
    return STEP_KEYS[min(index + 1, len(STEP_KEYS) - 1)]


def step_number(step: str) -> int:
    return STEP_KEYS.index(step) + 1
