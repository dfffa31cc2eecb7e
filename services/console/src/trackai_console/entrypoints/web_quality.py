"""The Event Match Quality page: 7 days against the 6.0 line (Chart.js), the coverage of each
customer-information parameter, and advice."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from trackai_console.domain.health import Coverage
from trackai_console.domain.quality import ADVICE, EMQ_THRESHOLD
from trackai_console.entrypoints.pages import CurrentUser, Pages
from trackai_console.service_layer.events import NotVisible, scope
from trackai_console.service_layer.ports import SourceUnavailable
from trackai_console.service_layer.quality import Quality


def quality_routes(router: APIRouter, pages: Pages, quality: Quality) -> None:
    @router.get("/emq", response_class=HTMLResponse)
    async def emq_page(request: Request, user: CurrentUser, tenant: str = "") -> HTMLResponse:
        scoped = scope(user, tenant)
        if scoped is None:
            raise NotVisible("tenant")
        report = await quality.last_days(scoped)
        try:
            coverage: Coverage | None = await quality.coverage(scoped, fresh=True)
        except SourceUnavailable:
            coverage = None
        return pages.render(
            request,
            "emq.html",
            {
                "user": user,
                "page": "emq",
                "report": report,
                "chart": report.chart(),
                "threshold": EMQ_THRESHOLD,
                "advice": ADVICE,
                "coverage": coverage,
            },
        )
