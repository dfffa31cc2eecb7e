"""The six setup tools as use cases: each reads what it needs through the ports and answers a
:class:`ToolResult`; a dependency that cannot answer is an ``error`` result, never an exception."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from trackai_agent.domain import verdicts
from trackai_agent.domain.model import (
    DependencyError,
    FetchRefused,
    NotReady,
    SetupContext,
    ToolResult,
)
from trackai_agent.domain.pagescan import scan_html
from trackai_agent.service_layer.ports import (
    MetaGraph,
    PageFetcher,
    PageRenderer,
    SetupRegistry,
    WebhookReader,
)

#: Added to the landing URL by the probe, to see whether redirects keep them.
PROBE_PARAMS = {"fbclid": "trackai_probe", "utm_source": "trackai", "utm_medium": "probe"}

#: The tools as the model sees them (OpenAI function-calling JSON schema).
TOOL_SPECS: dict[str, dict[str, Any]] = {
    "validate_meta_token": {
        "description": "Checks the stored Meta token (validity, expiry, scopes, app) and that "
        "it can read the configured pixel.",
        "parameters": {"type": "object", "properties": {}},
    },
    "validate_gateway_webhook": {
        "description": "Checks that a verified webhook from the seller's checkout arrived "
        "since setup began; otherwise gives the exact URL and where the secret goes.",
        "parameters": {"type": "object", "properties": {}},
    },
    "probe_landing_url": {
        "description": "Fetches the funnel's landing page: status, redirects, TLS, time to "
        "first byte, whether fbclid/utm_* survive redirects, whether our script is there.",
        "parameters": {"type": "object", "properties": {}},
    },
    "generate_tracking_snippet": {
        "description": "Returns the page code to paste per platform and where to paste it.",
        "parameters": {
            "type": "object",
            "properties": {
                "platform": {
                    "type": "string",
                    "description": "Platform key (html, wordpress, kiwify_thank_you, ...); "
                    "empty for all.",
                }
            },
        },
    },
    "check_pixel_presence": {
        "description": "Parses (and if needed renders) the landing page: the right Meta pixel "
        "once, GTM container, our script, Purchase with eventID.",
        "parameters": {"type": "object", "properties": {}},
    },
    "send_test_capi_event": {
        "description": "Sends a test Purchase through the Conversions API with the funnel's "
        "test event code; success unlocks the publish.",
        "parameters": {"type": "object", "properties": {}},
    },
}


@dataclass(frozen=True)
class ToolConfig:
    meta_app_id: str
    ingestion_public_url: str


@dataclass(frozen=True)
class ToolRun:
    result: ToolResult
    duration_ms: float


def _unavailable(exc: DependencyError) -> ToolResult:
    names = {
        "provisioner": "o cadastro do Track AI",
        "ingestion": "o serviço de webhooks do Track AI",
        "meta": "a API do Meta",
    }
    return ToolResult(
        "error",
        f"Não consegui consultar {names.get(exc.dependency, exc.dependency)} agora ({exc.detail}).",
        "Tente de novo em alguns minutos; se continuar, um especialista do Track AI assume.",
        {"reason": "dependency_unavailable", "dependency": exc.dependency},
    )


def with_probe_params(url: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(PROBE_PARAMS)) if q)
    return urlunsplit(parts._replace(query=query))


class SetupTools:
    """Runs one tool by name for a session's (tenant, funnel)."""

    def __init__(  # noqa: PLR0917 - one argument per port
        self,
        registry: SetupRegistry,
        webhooks: WebhookReader,
        meta: MetaGraph,
        fetcher: PageFetcher,
        renderer: PageRenderer | None,
        config: ToolConfig,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._registry = registry
        self._webhooks = webhooks
        self._meta = meta
        self._fetcher = fetcher
        self._renderer = renderer
        self._config = config
        self._now = now

    async def run(
        self,
        name: str,
        tenant_id: str,
        funnel_slug: str,
        arguments: dict[str, Any],
        setup_started_at: datetime,
    ) -> ToolRun:
        started = time.perf_counter()
        tools: dict[str, Callable[[SetupContext], Awaitable[ToolResult]]] = {
            "validate_meta_token": self.validate_meta_token,
            "validate_gateway_webhook": lambda ctx: self.validate_gateway_webhook(
                ctx, setup_started_at
            ),
            "probe_landing_url": self.probe_landing_url,
            "generate_tracking_snippet": lambda ctx: self.generate_tracking_snippet(
                ctx, str(arguments.get("platform") or "")
            ),
            "check_pixel_presence": self.check_pixel_presence,
            "send_test_capi_event": self.send_test_capi_event,
        }
        try:
            ctx = await self._registry.context(tenant_id, funnel_slug)
            result = await tools[name](ctx)
        except DependencyError as exc:
            result = _unavailable(exc)
        return ToolRun(result, (time.perf_counter() - started) * 1000)

    async def validate_meta_token(self, ctx: SetupContext) -> ToolResult:
        """Graph ``debug_token`` on the stored token, then the pixel read with it."""
        if not ctx.meta_token or not ctx.pixel_id:
            return ToolResult(
                "error",
                "O pixel e o token do Meta ainda não foram salvos para este funil.",
                'Em Track AI → Configuração → Meta, preencha "ID do pixel" (Gerenciador de '
                'Eventos → Configurações do pixel) e "Token de acesso" (Configurações do '
                "negócio → Usuários do sistema → Gerar novo token).",
                {"reason": "not_configured"},
            )
        debug = await self._meta.debug_token(ctx.meta_token)
        pixel = (
            await self._meta.read_pixel(ctx.pixel_id, ctx.meta_token) if debug.is_valid else None
        )
        return verdicts.meta_token_verdict(
            debug,
            pixel,
            pixel_id=ctx.pixel_id,
            expected_app_id=self._config.meta_app_id,
            now=self._now(),
        )

    async def validate_gateway_webhook(self, ctx: SetupContext, since: datetime) -> ToolResult:
        """Verified webhooks since setup began; their absence blocks setup."""
        activity = (
            await self._webhooks.activity(ctx.tenant_id, ctx.gateways, since)
            if ctx.gateways
            else ()
        )
        return verdicts.gateway_webhook_verdict(
            activity,
            gateways=ctx.gateways,
            tenant_id=ctx.tenant_id,
            ingestion_public_url=self._config.ingestion_public_url,
            since=since,
        )

    async def probe_landing_url(self, ctx: SetupContext) -> ToolResult:
        """Fetch the landing page with probe fbclid/utm_* and judge what came back."""
        if not ctx.landing_url:
            return _no_landing_url()
        url = with_probe_params(ctx.landing_url)
        try:
            page = await self._fetcher.fetch(url)
        except FetchRefused as exc:
            return _refused(ctx.landing_url, str(exc))
        except DependencyError as exc:
            return _unreachable(ctx.landing_url, exc.detail)
        scan = scan_html(page.body)
        return verdicts.landing_verdict(
            page, probe_url=url, our_script=scan.our_script, now=self._now()
        )

    async def check_pixel_presence(self, ctx: SetupContext) -> ToolResult:
        """Parse the page; when the pixel is not in the HTML, render it in Chromium and look
        again (pixels injected by JavaScript or a tag manager)."""
        if not ctx.landing_url:
            return _no_landing_url()
        try:
            page = await self._fetcher.fetch(ctx.landing_url)
        except FetchRefused as exc:
            return _refused(ctx.landing_url, str(exc))
        except DependencyError as exc:
            return _unreachable(ctx.landing_url, exc.detail)
        scan = scan_html(page.body)
        try:
            snippets = await self._registry.snippets(ctx.tenant_id, ctx.funnel_slug)
        except NotReady:
            snippets = ()
        # The provisioned web container fires the pixel: its id is in the snippets to paste.
        our_gtm = sorted({g for s in snippets for g in scan_html(s.content).gtm_containers})
        rendered = False
        missing = ctx.pixel_id not in scan.pixel_ids
        if (
            missing
            and not set(our_gtm) & set(scan.gtm_containers)
            and scan.script_count
            and (self._renderer)
        ):
            try:
                scan = scan_html(await self._renderer.render(page.final_url))
                rendered = True
            except DependencyError:
                rendered = False
        return verdicts.pixel_verdict(
            scan, pixel_id=ctx.pixel_id, url=page.final_url, rendered=rendered, our_gtm=our_gtm
        )

    async def send_test_capi_event(self, ctx: SetupContext) -> ToolResult:
        if not ctx.test_event_code:
            return ToolResult(
                "error",
                "Este funil não tem código de evento de teste, então o evento iria como venda "
                "real.",
                "Copie o código em Gerenciador de Eventos → seu pixel → Eventos de teste (ex.: "
                'TEST12345) e cole em Track AI → Configuração → Funil → campo "Código de '
                'evento de teste".',
                {"reason": "no_test_code"},
            )
        try:
            sent = await self._registry.send_test_event(ctx.tenant_id, ctx.funnel_slug)
        except NotReady as exc:
            return _not_provisioned(str(exc))
        return verdicts.test_event_verdict(sent)

    async def generate_tracking_snippet(self, ctx: SetupContext, platform: str) -> ToolResult:
        try:
            snippets = await self._registry.snippets(ctx.tenant_id, ctx.funnel_slug)
        except NotReady as exc:
            return _not_provisioned(str(exc))
        return verdicts.snippets_verdict(snippets, platform)


def _no_landing_url() -> ToolResult:
    return ToolResult(
        "error",
        "O funil não tem URL da página de vendas.",
        'Em Track AI → Configuração → Funil, preencha "URL da página de vendas" com o '
        "endereço que o anúncio abre (https://...).",
        {"reason": "no_landing_url"},
    )


def _refused(url: str, why: str) -> ToolResult:
    return ToolResult(
        "error",
        f"Não verifiquei {url}: {why}.",
        'Informe em Track AI → Configuração → Funil → "URL da página de vendas" o endereço '
        "público da página (https://seudominio.com.br/...), o mesmo que o anúncio abre.",
        {"reason": "refused", "why": why},
    )


def _unreachable(url: str, why: str) -> ToolResult:
    return ToolResult(
        "error",
        f"A página {url} não respondeu: {why}.",
        "Abra a página no navegador para confirmar que está no ar; se estiver, confira o DNS "
        "do domínio no painel da hospedagem e rode a verificação de novo.",
        {"reason": "unreachable", "why": why},
    )


def _not_provisioned(why: str) -> ToolResult:
    return ToolResult(
        "error",
        f"A estrutura de rastreamento ainda não está pronta: {why}.",
        'Em Track AI → Configuração → Provisionar, clique em "Provisionar" e espere todas as '
        "etapas ficarem verdes; depois peça de novo.",
        {"reason": "not_provisioned", "why": why},
    )
