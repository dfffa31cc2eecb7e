"""What every console page shares: rendering with the pt-BR filters, cookies, the CSRF guard
and the signed-in user dependency."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from trackai_console.domain.accounts import User, new_token
from trackai_console.domain.health import percent
from trackai_console.service_layer.accounts import Accounts
from trackai_kit.logging import bind_context

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


def decimal(value: float, places: int = 1) -> str:
    """A number with the Brazilian decimal comma: 6,5."""
    return f"{value:.{places}f}".replace(".", ",")


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
        self.templates.env.filters["decimal"] = decimal
        self.templates.env.filters["percent"] = percent

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
    if user.tenant_id is not None:
        # The seller's tenant labels this request's log lines and Sentry events.
        bind_context(tenant_id=str(user.tenant_id))
    return user


CurrentUser = Annotated[User, Depends(signed_in)]


def local_path(target: str) -> str:
    """Only same-site paths after sign-in (no open redirect to another host)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
