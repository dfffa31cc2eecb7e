"""The setup wizard (``/configuracao``): a modal over the console that can be closed and resumed,
its position stored by the console. Forms post and redirect; the webhook wait and the
provisioning steps are fragments htmx re-reads when the tenant's status stream (the
``/eventos/ao-vivo`` SSE) says something changed. The tenant is always ``scope(user, ...)``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from trackai_console.domain.accounts import User
from trackai_console.domain.wizard import (
    GATEWAY_NAMES,
    PROVIDERS,
    STEPS,
    Check,
    CompanyForm,
    FormErrors,
    step_number,
)
from trackai_console.entrypoints.pages import CurrentUser, Pages
from trackai_console.service_layer.events import Events, NotVisible, scope
from trackai_console.service_layer.ports import UpstreamRefused
from trackai_console.service_layer.wizard import SetupWizard, StepLocked

BASE = "/configuracao"
#: htmx's "stop polling" answer (a 2xx: the content is still swapped in).
STOP_POLLING = 286


class TenantForm(BaseModel):
    #: Operators only: the tenant they are setting up (ignored for sellers).
    tenant: str = ""


class CompanyFields(TenantForm):
    empresa: str = ""
    funil: str = ""
    pagina: str = ""
    dominios: str = ""


class MetaFields(TenantForm):
    pixel: str = ""
    token: str = ""
    codigo_teste: str = ""


def _tenant_or_404(user: User, tenant: str) -> str:
    scoped = scope(user, tenant)
    if scoped is None:
        raise NotVisible("tenant")
    return scoped


def _suffix(user: User, tenant: str) -> str:
    """The operator's tenant choice, carried on links (a seller's URL never names a tenant)."""
    return f"?tenant={tenant}" if user.is_operator else ""


def wizard_routes(router: APIRouter, pages: Pages, wizard: SetupWizard, events: Events) -> None:
    """The wizard's pages and fragments (GET), then its forms (POST)."""
    render = _renderer(pages, wizard)
    _page_routes(router, pages, wizard, events, render)
    _form_routes(router, wizard, render)


Render = Callable[..., Awaitable[Response]]


def to_step(user: User, tenant: str, step: str, notice: str = "") -> Response:
    target = f"{BASE}/{step}{_suffix(user, tenant)}"
    if notice:
        target += ("&" if "?" in target else "?") + "aviso=" + quote(notice)
    return RedirectResponse(target, status_code=303)


def _renderer(pages: Pages, wizard: SetupWizard) -> Render:
    async def render(
        request: Request,
        user: User,
        tenant: str,
        step: str | None,
        *,
        errors: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
        message: str = "",
        check: Check | None = None,
        status_code: int = 200,
    ) -> Response:
        try:
            view = await wizard.view(tenant, step)
        except StepLocked as locked:
            target = f"{BASE}/{locked.step}{_suffix(user, tenant)}"
            sep = "&" if "?" in target else "?"
            return RedirectResponse(f"{target}{sep}aviso={quote(locked.message)}", status_code=303)
        aviso = request.query_params.get("aviso", "")
        return pages.render(
            request,
            "wizard.html",
            {
                "user": user,
                "page": "wizard",
                "tenant": tenant,
                "suffix": _suffix(user, tenant),
                "view": view,
                "setup": view.setup,
                "run": view.run,
                "step": view.step,
                "steps": STEPS,
                "number": step_number(view.step),
                "gateways": GATEWAY_NAMES,
                "providers": PROVIDERS,
                "errors": errors or {},
                "form": form or {},
                "message": message,
                "notice": aviso,
                "check": check,
                "provisioning": wizard.provisioning(tenant),
                # The assistant's chat panel (agent/panel.html) in the wizard's slot.
                "agent_tenant": tenant if user.is_operator else "",
                "agent_funnel": view.record.funnel_slug,
            },
            status_code=status_code,
        )

    return render


def _page_routes(
    router: APIRouter, pages: Pages, wizard: SetupWizard, events: Events, render: Render
) -> None:
    @router.get(BASE, response_class=HTMLResponse)
    async def resume(request: Request, user: CurrentUser, tenant: str = "") -> Response:
        scoped = scope(user, tenant)
        if scoped is None:
            return pages.render(
                request,
                "wizard_tenants.html",
                {"user": user, "page": "wizard", "tenants": await events.tenants()},
            )
        return await render(request, user, scoped, None)

    @router.get(BASE + "/webhook", response_class=HTMLResponse)
    async def webhook_fragment(request: Request, user: CurrentUser, tenant: str = "") -> Response:
        scoped = _tenant_or_404(user, tenant)
        check = await wizard.webhook_check(scoped)
        return pages.render(
            request,
            "_wizard_webhook.html",
            {"check": check, "suffix": _suffix(user, scoped)},
            # htmx ends the element's polling on 286; the verdict will not change back.
            status_code=STOP_POLLING if check.ok else 200,
        )

    @router.get(BASE + "/provisionamento/etapas", response_class=HTMLResponse)
    async def run_fragment(request: Request, user: CurrentUser, tenant: str = "") -> Response:
        scoped = _tenant_or_404(user, tenant)
        view = await wizard.view(scoped)
        return pages.render(
            request,
            "_wizard_run.html",
            {
                "run": view.run,
                "suffix": _suffix(user, scoped),
                "providers": PROVIDERS,
                "provisioning": wizard.provisioning(scoped),
            },
        )

    @router.get(BASE + "/{step}", response_class=HTMLResponse)
    async def open_step(
        request: Request, step: str, user: CurrentUser, tenant: str = ""
    ) -> Response:
        scoped = _tenant_or_404(user, tenant)
        if step not in STEPS:
            raise NotVisible(step)
        check = await wizard.webhook_check(scoped) if step == "checkout" else None
        return await render(request, user, scoped, step, check=check)


def _form_routes(router: APIRouter, wizard: SetupWizard, render: Render) -> None:
    @router.post(BASE + "/empresa", response_class=HTMLResponse)
    async def save_company(
        request: Request, user: CurrentUser, f: Annotated[CompanyFields, Form()]
    ) -> Response:
        scoped = _tenant_or_404(user, f.tenant)
        form = f.model_dump(exclude={"tenant"})
        try:
            await wizard.save_company(
                scoped, CompanyForm.parse(f.empresa, f.funil, f.pagina, f.dominios)
            )
        except FormErrors as exc:
            return await render(
                request, user, scoped, "empresa", errors=exc.errors, form=form, status_code=400
            )
        except UpstreamRefused as exc:
            return await render(
                request, user, scoped, "empresa", form=form, message=exc.message, status_code=400
            )
        return to_step(user, scoped, "checkout")

    @router.post(BASE + "/checkout", response_class=HTMLResponse)
    async def save_gateway(
        request: Request,
        user: CurrentUser,
        gateway: Annotated[str, Form()] = "",
        segredo: Annotated[str, Form()] = "",
        tenant: Annotated[str, Form()] = "",
    ) -> Response:
        scoped = _tenant_or_404(user, tenant)
        try:
            await wizard.save_gateway(scoped, gateway, segredo)
        except (FormErrors, UpstreamRefused) as exc:
            errors = exc.errors if isinstance(exc, FormErrors) else {}
            message = exc.message if isinstance(exc, UpstreamRefused) else ""
            return await render(
                request,
                user,
                scoped,
                "checkout",
                errors=errors,
                message=message,
                form={"gateway": gateway},
                status_code=400,
            )
        return to_step(user, scoped, "checkout", "Segredo salvo. Agora envie um webhook de teste.")

    @router.post(BASE + "/meta", response_class=HTMLResponse)
    async def save_meta(
        request: Request, user: CurrentUser, f: Annotated[MetaFields, Form()]
    ) -> Response:
        scoped = _tenant_or_404(user, f.tenant)
        # The token is never echoed back into the form.
        form = {"pixel": f.pixel, "codigo_teste": f.codigo_teste}
        try:
            _, verdict = await wizard.save_meta(scoped, f.pixel, f.token, f.codigo_teste)
        except FormErrors as exc:
            return await render(
                request, user, scoped, "meta", errors=exc.errors, form=form, status_code=400
            )
        except UpstreamRefused as exc:
            return await render(
                request, user, scoped, "meta", form=form, message=exc.message, status_code=400
            )
        if verdict.status == "error":
            return await render(
                request, user, scoped, "meta", form=form, check=verdict, status_code=400
            )
        return to_step(user, scoped, "provisionamento", verdict.message)

    @router.post(BASE + "/provisionamento", response_class=HTMLResponse)
    async def provision(
        request: Request, user: CurrentUser, tenant: Annotated[str, Form()] = ""
    ) -> Response:
        scoped = _tenant_or_404(user, tenant)
        try:
            await wizard.start_provisioning(scoped)
        except StepLocked as locked:
            return to_step(user, scoped, locked.step, locked.message)
        return to_step(user, scoped, "provisionamento")

    @router.post(BASE + "/teste", response_class=HTMLResponse)
    async def send_test(
        request: Request, user: CurrentUser, tenant: Annotated[str, Form()] = ""
    ) -> Response:
        scoped = _tenant_or_404(user, tenant)
        try:
            sent = await wizard.send_test_event(scoped)
        except StepLocked as locked:
            return to_step(user, scoped, locked.step, locked.message)
        except UpstreamRefused as exc:
            return await render(
                request, user, scoped, "teste", message=exc.message, status_code=400
            )
        return to_step(
            user,
            scoped,
            "teste",
            f"Evento de teste enviado (event_id {sent.event_id}); o Meta recebeu "
            f"{sent.events_received} evento(s) com o código {sent.test_event_code}.",
        )

    @router.post(BASE + "/publicar", response_class=HTMLResponse)
    async def publish(
        request: Request,
        user: CurrentUser,
        observacao: Annotated[str, Form()] = "",
        confirmo: Annotated[str, Form()] = "",
        tenant: Annotated[str, Form()] = "",
    ) -> Response:
        scoped = _tenant_or_404(user, tenant)
        if confirmo != "sim":
            return await render(
                request,
                user,
                scoped,
                "publicar",
                errors={"confirmo": "Marque a confirmação de que você revisou a configuração."},
                status_code=400,
            )
        try:
            await wizard.publish(scoped, user, observacao)
        except StepLocked as locked:
            return to_step(user, scoped, locked.step, locked.message)
        except UpstreamRefused as exc:
            # Refused upstream (no successful test event yet): back to the test step, saying why.
            return await render(
                request, user, scoped, "teste", message=exc.message, status_code=409
            )
        return to_step(user, scoped, "publicar", "Publicado! O rastreamento está no ar.")
