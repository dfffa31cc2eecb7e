"""The console's web pages (server-rendered Jinja2, htmx for partial updates): sign-in, sign-out,
one-time password links and the signed-in shell. Routes decode the form, call a use case and
render; the session and CSRF rules live here because they are HTTP concerns."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from trackai_console.domain.accounts import AccountError, User, new_token
from trackai_console.service_layer.accounts import Accounts, SignInRefused

PACKAGE_DIR = Path(__file__).resolve().parent.parent
SESSION_COOKIE = "trackai_session"
CSRF_COOKIE = "trackai_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAO_PAULO = ZoneInfo("America/Sao_Paulo")


def local_time(value: datetime | None) -> str:
    """A timestamp as a Brazilian seller reads it: São Paulo time, dd/mm/aaaa hh:mm."""
    if value is None:
        return "—"
    return value.astimezone(SAO_PAULO).strftime("%d/%m/%Y %H:%M")


def brl(cents: int) -> str:
    """Money in BRL with Brazilian separators: R$ 1.234,56."""
    whole, frac = divmod(abs(cents), 100)
    sign = "-" if cents < 0 else ""
    return f"{sign}R$ {whole:,}".replace(",", ".") + f",{frac:02d}"


class NotSignedIn(Exception):
    """Raised by the session dependency; answered with a redirect to the sign-in page."""


class CsrfRejected(Exception):
    """A state-changing request without the matching CSRF token."""


@dataclass(frozen=True)
class WebConfig:
    secure_cookies: bool
    session_max_age_s: int


class Pages:
    """Rendering and cookies shared by every page."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.templates = Jinja2Templates(directory=PACKAGE_DIR / "templates")
        self.templates.env.filters["hora_local"] = local_time
        self.templates.env.filters["brl"] = brl

    def set_cookie(self, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            httponly=True,
            secure=self.config.secure_cookies,
            samesite="lax",
            path="/",
        )

    def render(
        self,
        request: Request,
        template: str,
        context: dict[str, Any],
        *,
        status_code: int = 200,
    ) -> HTMLResponse:
        # Double-submit: the same random value in an HttpOnly cookie and in the page (form
        # fields, and the header htmx sends); a cross-site page can read neither.
        token = request.cookies.get(CSRF_COOKIE) or new_token()
        response = self.templates.TemplateResponse(
            request, template, {**context, "csrf_token": token}, status_code=status_code
        )
        self.set_cookie(response, CSRF_COOKIE, token, None)
        return response


async def csrf_guard(request: Request) -> None:
    """Every state-changing request carries the CSRF cookie's value in a field or header."""
    if request.method in SAFE_METHODS:
        return
    expected = request.cookies.get(CSRF_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        field = form.get(CSRF_FIELD)
        sent = field if isinstance(field, str) else ""
    if not expected or not secrets.compare_digest(expected, sent):
        raise CsrfRejected


async def signed_in(request: Request) -> User:
    """The session's user; anyone else is sent to the sign-in page."""
    accounts: Accounts = request.app.state.accounts
    token = request.cookies.get(SESSION_COOKIE)
    user = await accounts.current_user(token) if token else None
    if user is None:
        raise NotSignedIn
    return user


CurrentUser = Annotated[User, Depends(signed_in)]


def build_web(accounts: Accounts, config: WebConfig) -> APIRouter:
    """The console's pages; the router-wide guard checks CSRF on every non-GET route."""
    pages = Pages(config)
    router = APIRouter(dependencies=[Depends(csrf_guard)])
    _auth_routes(router, pages, accounts)
    _app_routes(router, pages)
    return router


def _auth_routes(router: APIRouter, pages: Pages, accounts: Accounts) -> None:
    @router.get("/entrar", response_class=HTMLResponse)
    async def login_page(request: Request, proximo: str = "/", aviso: str = "") -> HTMLResponse:
        return pages.render(request, "login.html", {"next": _local_path(proximo), "notice": aviso})

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
                {"error": refused.message, "email": email, "next": _local_path(proximo)},
                status_code=429 if limited else 400,
            )
        response = RedirectResponse(_local_path(proximo), status_code=303)
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


def _app_routes(router: APIRouter, pages: Pages) -> None:
    @router.get("/", response_class=HTMLResponse)
    async def overview(request: Request, user: CurrentUser) -> HTMLResponse:
        return pages.render(request, "overview.html", {"user": user, "page": "overview"})


def _local_path(target: str) -> str:
    """Only same-site paths after sign-in (no open redirect to another host)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


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

    async def csrf_rejected(_: Request, __: Exception) -> Response:
        return HTMLResponse(
            "<!doctype html><html lang='pt-BR'><meta charset='utf-8'><title>Track AI</title>"
            "<p>Não foi possível confirmar que este pedido veio do console. Recarregue a página "
            "e tente de novo.</p></html>",
            status_code=403,
        )

    app.add_exception_handler(NotSignedIn, to_login)
    app.add_exception_handler(CsrfRejected, csrf_rejected)
    app.mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static")
    app.include_router(router)
