"""The DLQ page: a tenant's dead events with their reasons, and replay of one, a selection or
everything matching the filter (confirmed in the browser; recorded upstream with who asked)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from trackai_console.domain.dead_letters import REASON_LABELS, ReplayOutcome
from trackai_console.entrypoints.pages import CurrentUser, Pages
from trackai_console.service_layer.dead_letters import DeadLetters
from trackai_console.service_layer.events import NotVisible, scope

PERIODS = {"7d": "Últimos 7 dias", "30d": "Últimos 30 dias", "tudo": "Tudo"}


class DlqQuery(BaseModel):
    motivo: str = ""
    periodo: str = "tudo"
    tenant: str = ""
    cursor: str = ""

    def reason(self) -> str:
        return self.motivo if self.motivo in REASON_LABELS else ""

    def period(self) -> str:
        return self.periodo if self.periodo in PERIODS else "tudo"


class ReplayForm(DlqQuery):
    """The replay form: chosen events, or everything matching the filter."""

    evento: list[str] = []
    tudo: bool = False


def dlq_routes(router: APIRouter, pages: Pages, dead: DeadLetters) -> None:
    async def render_list(
        request: Request, user: CurrentUser, q: DlqQuery, outcome: ReplayOutcome | None
    ) -> HTMLResponse:
        tenant = scope(user, q.tenant)
        if tenant is None:
            raise NotVisible("tenant")
        page = await dead.page(tenant, reason=q.reason(), period=q.period(), page_token=q.cursor)
        template = "_dlq_list.html" if request.headers.get("HX-Request") else "dlq.html"
        return pages.render(
            request,
            template,
            {
                "user": user,
                "page": "dlq",
                "tenant": tenant,
                "letters": page.dead_letters,
                "next_token": page.next_token,
                "reasons": REASON_LABELS,
                "periods": PERIODS,
                "reason": q.reason(),
                "period": q.period(),
                "outcome": outcome,
            },
        )

    @router.get("/dlq", response_class=HTMLResponse)
    async def dlq_page(
        request: Request, user: CurrentUser, q: Annotated[DlqQuery, Query()]
    ) -> HTMLResponse:
        return await render_list(request, user, q, None)

    @router.post("/dlq/reenviar", response_class=HTMLResponse)
    async def replay(
        request: Request,
        user: CurrentUser,
        q: Annotated[ReplayForm, Form()],
    ) -> HTMLResponse:
        tenant = scope(user, q.tenant)
        if tenant is None:
            raise NotVisible("tenant")
        if q.tudo:
            outcome = await dead.replay_matching(tenant, user, reason=q.reason(), period=q.period())
        else:
            outcome = await dead.replay(tenant, user, q.evento)
        return await render_list(request, user, q, outcome)
