"""The operators' tenant list with each tenant's health (``/operador/tenants``); sellers get 404."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from trackai_console.domain.health import BREAKER_LABELS
from trackai_console.entrypoints.pages import CurrentUser, Pages
from trackai_console.service_layer.tenant_health import TenantHealthList


def tenant_health_routes(router: APIRouter, pages: Pages, health: TenantHealthList) -> None:
    @router.get("/operador/tenants", response_class=HTMLResponse)
    async def tenants(request: Request, user: CurrentUser, pagina: str = "") -> HTMLResponse:
        found = await health.page(user, pagina)
        return pages.render(
            request,
            "operator_tenants.html",
            {
                "user": user,
                "page": "tenants",
                "rows": found.rows,
                "next_token": found.next_token,
                "breaker_labels": BREAKER_LABELS,
            },
        )
