"""The events pages: the filtered, keyset-paginated list (full page and the table fragment htmx
refreshes), one conversion's detail, and the live stream (server-sent events). The tenant read
is always ``scope(user, ...)``: a seller's own, whatever the URL carries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel

from trackai_console.domain.accounts import User
from trackai_console.domain.events import (
    OUTCOME_LABELS,
    PAYMENT_LABELS,
    PERIODS,
    STAGE_LABELS,
    STATUS_LABELS,
    EventFilter,
)
from trackai_console.domain.wizard import GATEWAY_NAMES
from trackai_console.entrypoints.pages import CurrentUser, Pages
from trackai_console.service_layer.events import Events, NotVisible, scope
from trackai_console.service_layer.live import StatusHub


class EventQuery(BaseModel):
    """The events page's query string, with the pt-BR names the seller sees in the URL."""

    status: str = ""
    gateway: str = ""
    estagio: str = ""
    funil: str = ""
    periodo: str = "7d"
    pedido: str = ""
    #: Operators only: the tenant they are looking at (ignored for sellers).
    tenant: str = ""
    #: Keyset cursor of "Carregar mais", and whether the rows are appended.
    cursor: str = ""
    mais: bool = False

    def where(self) -> EventFilter:
        return EventFilter.parse(
            status=self.status,
            gateway=self.gateway,
            stage=self.estagio,
            funnel_id=self.funil,
            period=self.periodo,
            order_id=self.pedido,
        )


def _query(where: EventFilter, tenant: str | None, user: User) -> str:
    """The filters as a query string (the operator's tenant choice included; a seller's never)."""
    params = {
        "status": where.status,
        "gateway": where.gateway,
        "estagio": where.stage,
        "funil": where.funnel_id,
        "periodo": where.period,
        "pedido": where.order_id,
    }
    if user.is_operator and tenant:
        params["tenant"] = tenant
    return urlencode({k: v for k, v in params.items() if v})


def event_routes(router: APIRouter, pages: Pages, events: Events, hub: StatusHub) -> None:
    async def table_context(
        user: User, tenant: str, where: EventFilter, cursor: str
    ) -> dict[str, object]:
        page = await events.page(tenant, where, cursor)
        query = _query(where, tenant, user)
        return {
            "rows": page.rows,
            "next_token": page.next_token,
            "query": query,
            "stage_labels": STAGE_LABELS,
        }

    @router.get("/eventos", response_class=HTMLResponse)
    async def events_page(
        request: Request, user: CurrentUser, q: Annotated[EventQuery, Query()]
    ) -> HTMLResponse:
        where = q.where()
        scoped = scope(user, q.tenant)
        context: dict[str, object] = {
            "user": user,
            "page": "events",
            "where": where,
            "tenant": scoped,
            "statuses": STATUS_LABELS,
            "gateways": GATEWAY_NAMES,
            "stages": STAGE_LABELS,
            "periods": PERIODS,
        }
        if scoped is None:
            context["tenants"] = await events.tenants()
            return pages.render(request, "events.html", context)
        context["funnels"] = await events.funnels(scoped)
        context.update(await table_context(user, scoped, where, ""))
        return pages.render(request, "events.html", context)

    @router.get("/eventos/tabela", response_class=HTMLResponse)
    async def events_table(
        request: Request, user: CurrentUser, q: Annotated[EventQuery, Query()]
    ) -> HTMLResponse:
        scoped = scope(user, q.tenant)
        if scoped is None:
            return HTMLResponse("", status_code=400)
        context = await table_context(user, scoped, q.where(), q.cursor)
        # "Carregar mais" appends rows; a live refresh replaces the first page.
        template = "_event_rows.html" if q.mais else "_events_table.html"
        return pages.render(request, template, {"user": user, **context})

    @router.get("/eventos/ao-vivo")
    async def live(
        user: CurrentUser,
        tenant: str = "",
        last_event_id: Annotated[str, Header(alias="Last-Event-ID")] = "",
    ) -> Response:
        scoped = scope(user, tenant)
        if scoped is None:
            return Response(status_code=400)

        async def stream() -> AsyncIterator[str]:
            # Tell EventSource how long to wait before reconnecting after a drop, then say the
            # stream is open: a fragment that listens for "ready" re-reads once now, covering
            # whatever changed between its page's render and this (re)connection.
            yield "retry: 1000\n\nevent: ready\ndata: {}\n\n"
            async for update in hub.subscribe(scoped, last_event_id):
                if update is None:
                    yield ": ping\n\n"
                    continue
                data = json.dumps(
                    {
                        "entity": update.entity,
                        "entity_id": update.entity_id,
                        "status": update.status,
                        "detail": update.detail,
                        "stage": update.stage,
                        "score": update.score,
                    }
                )
                yield f"id: {update.id}\nevent: status\ndata: {data}\n\n"

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @router.get("/eventos/{conversion_id}", response_class=HTMLResponse)
    async def event_detail(
        request: Request, conversion_id: str, user: CurrentUser, tenant: str = ""
    ) -> HTMLResponse:
        scoped = scope(user, tenant)
        if scoped is None:
            raise NotVisible(conversion_id)
        detail = await events.detail(scoped, conversion_id)
        return pages.render(
            request,
            "event_detail.html",
            {
                "user": user,
                "page": "events",
                "detail": detail,
                "row": detail.row,
                "stage_labels": STAGE_LABELS,
                "payment_labels": PAYMENT_LABELS,
                "outcome_labels": OUTCOME_LABELS,
                "back": "/eventos" + (f"?tenant={scoped}" if user.is_operator else ""),
            },
        )
