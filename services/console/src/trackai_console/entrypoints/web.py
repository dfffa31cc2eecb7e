"""The console's web pages (server-rendered Jinja2, htmx for partial updates): sign-in, sign-out,
one-time password links and the signed-in shell. Routes decode the form, call a use case and
render; the session and CSRF rules live here because they are HTTP concerns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from trackai_console.domain.accounts import AccountError, new_token
from trackai_console.domain.health import BREAKER_LABELS
from trackai_console.domain.wizard import STEPS
from trackai_console.entrypoints.pages import (
    CSRF_COOKIE,
    PACKAGE_DIR,
    SESSION_COOKIE,
    CsrfRejected,
    CurrentUser,
    NotSignedIn,
    Pages,
    WebConfig,
    csrf_guard,
    local_path,
)
from trackai_console.entrypoints.web_agent import agent_routes
from trackai_console.entrypoints.web_dlq import dlq_routes
from trackai_console.entrypoints.web_events import event_routes
from trackai_console.entrypoints.web_operator import tenant_health_routes
from trackai_console.entrypoints.web_quality import quality_routes
from trackai_console.entrypoints.web_wizard import wizard_routes
from trackai_console.service_layer.accounts import Accounts, SignInRefused
from trackai_console.service_layer.assistant import Assistant
from trackai_console.service_layer.dead_letters import DeadLetters
from trackai_console.service_layer.events import Events, NotVisible, scope
from trackai_console.service_layer.live import StatusHub
from trackai_console.service_layer.overview import BuildOverview
from trackai_console.service_layer.ports import SourceUnavailable
from trackai_console.service_layer.quality import Quality
from trackai_console.service_layer.tenant_health import TenantHealthList
from trackai_console.service_layer.wizard import SetupWizard

ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


@dataclass(frozen=True)
class UseCases:
    accounts: Accounts
    events: Events
    dead_letters: DeadLetters
    quality: Quality
    overview: BuildOverview
    hub: StatusHub
    assistant: Assistant
    wizard: SetupWizard
    tenant_health: TenantHealthList


def build_web(uses: UseCases, config: WebConfig) -> APIRouter:
    """The console's pages; the router-wide guard checks CSRF on every non-GET route."""
    pages = Pages(config)
    router = APIRouter(dependencies=[Depends(csrf_guard)])
    _auth_routes(router, pages, uses.accounts)
    _app_routes(router, pages, uses)
    event_routes(router, pages, uses.events, uses.hub)
    dlq_routes(router, pages, uses.dead_letters)
    quality_routes(router, pages, uses.quality)
    agent_routes(router, pages, uses.assistant)
    wizard_routes(router, pages, uses.wizard, uses.events)
    tenant_health_routes(router, pages, uses.tenant_health)
    return router


def _auth_routes(router: APIRouter, pages: Pages, accounts: Accounts) -> None:
    @router.get("/entrar", response_class=HTMLResponse)
    async def login_page(request: Request, proximo: str = "/", aviso: str = "") -> HTMLResponse:
        return pages.render(request, "login.html", {"next": local_path(proximo), "notice": aviso})

    @router.post("/entrar", response_class=HTMLResponse)
    async def login(
        request: Request,
        email: Annotated[str, Form()] = "",
        senha: Annotated[str, Form()] = "",
        proximo: Annotated[str, Form()] = "/",
    ) -> Response:
        client_ip = request.client.host if request.client else None
        try:
            signed = await accounts.sign_in(email, senha, client_ip)
        except SignInRefused as refused:
            limited = refused.message == accounts.limits.message
            return pages.render(
                request,
                "login.html",
                {"error": refused.message, "email": email, "next": local_path(proximo)},
                status_code=429 if limited else 400,
            )
        response = RedirectResponse(local_path(proximo), status_code=303)
        pages.set_cookie(
            response, SESSION_COOKIE, signed.session_token, pages.config.session_max_age_s
        )
        # A new CSRF token with the new session, so a value planted before sign-in is useless.
        pages.set_cookie(response, CSRF_COOKIE, new_token(), None)
        return response

    @router.post("/sair")
    async def logout(request: Request) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            await accounts.sign_out(token)
        response = RedirectResponse("/entrar", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @router.get("/senha", response_class=HTMLResponse)
    async def password_page(request: Request, token: str = "") -> HTMLResponse:
        user = await accounts.link_user(token) if token else None
        return pages.render(
            request,
            "password.html",
            {"token": token, "valid": user is not None, "user": user},
            status_code=200 if user else 404,
        )

    @router.post("/senha", response_class=HTMLResponse)
    async def choose_password(
        request: Request,
        token: Annotated[str, Form()] = "",
        senha: Annotated[str, Form()] = "",
        confirmacao: Annotated[str, Form()] = "",
    ) -> Response:
        error = "As senhas não conferem." if senha != confirmacao else None
        if error is None:
            try:
                await accounts.choose_password(token, senha)
            except AccountError as exc:
                error = exc.message
        if error is not None:
            user = await accounts.link_user(token)
            return pages.render(
                request,
                "password.html",
                {"token": token, "valid": user is not None, "user": user, "error": error},
                status_code=400,
            )
        aviso = quote("Senha definida. Entre com o seu e-mail e a nova senha.")
        return RedirectResponse(f"/entrar?aviso={aviso}", status_code=303)


def _app_routes(router: APIRouter, pages: Pages, uses: UseCases) -> None:
    @router.get("/", response_class=HTMLResponse)
    async def overview(request: Request, user: CurrentUser, tenant: str = "") -> HTMLResponse:
        scoped = scope(user, tenant)
        context: dict[str, object] = {"user": user, "page": "overview", "tenant": scoped}
        if scoped is None:
            context["tenants"] = await uses.events.tenants()
        else:
            context["overview"] = await uses.overview(scoped)
            context["breaker_labels"] = BREAKER_LABELS
            context["setup"] = await uses.wizard.unfinished(scoped)
            context["setup_steps"] = STEPS
        return pages.render(request, "overview.html", context)


def configure(app: FastAPI, router: APIRouter, accounts: Accounts) -> None:
    """Mount the pages, the static files and the answers to the web-only exceptions."""
    app.state.accounts = accounts

    async def to_login(request: Request, _: Exception) -> Response:
        target = "/entrar?proximo=" + quote(request.url.path)
        if request.headers.get("HX-Request"):
            # htmx follows HX-Redirect with a full page load instead of swapping a login form
            # into a fragment.
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    def message_page(status_code: int, *paragraphs: str) -> ExceptionHandler:
        """A bare pt-BR page for an error answer (no session data needed to render it)."""
        body = "".join(f"<p>{p}</p>" for p in paragraphs)
        html = (
            "<!doctype html><html lang='pt-BR'><meta charset='utf-8'><title>Track AI</title>"
            f"{body}</html>"
        )

        async def handler(_: Request, __: Exception) -> Response:
            return HTMLResponse(html, status_code=status_code)

        return handler

    not_visible = message_page(
        404, "Evento não encontrado.", "<a href='/eventos'>Voltar para os eventos</a>"
    )
    unavailable = message_page(
        503,
        "Um serviço do Track AI não respondeu. Tente de novo em instantes.",
        "<a href='/'>Voltar para a visão geral</a>",
    )
    csrf_rejected = message_page(
        403,
        "Não foi possível confirmar que este pedido veio do console. Recarregue a página e "
        "tente de novo.",
    )

    app.add_exception_handler(NotSignedIn, to_login)
    app.add_exception_handler(CsrfRejected, csrf_rejected)
    app.add_exception_handler(NotVisible, not_visible)
    app.add_exception_handler(SourceUnavailable, unavailable)
    app.mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static")
    app.include_router(router)
