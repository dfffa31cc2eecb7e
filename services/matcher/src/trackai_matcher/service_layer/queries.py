"""Read use cases of MatcherService: validation, paging and date ranges over the reports
(``MatchReports``)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from trackai_kit.identity import is_event_id
from trackai_matcher.domain.model import Stage
from trackai_matcher.service_layer.ports import DayStats, MatchReports, PageFilter, SummaryRow

DEFAULT_PAGE = 100
MAX_PAGE = 1000
#: Conversions per BatchGetMatches call.
MAX_BATCH = 500
MAX_STATS_DAYS = 366


class InvalidArgument(ValueError):
    """A request the caller must fix (INVALID_ARGUMENT)."""


class NotFound(LookupError):
    """Nothing of this tenant under that id (NOT_FOUND, also for another tenant's ids)."""


@dataclass(frozen=True)
class Page:
    rows: list[SummaryRow]
    next_token: str


def tenant(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise InvalidArgument("tenant_id: give the tenant's UUID") from exc


def _encode(row: SummaryRow) -> str:
    raw = json.dumps([row.event_time.isoformat(), row.event_id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode(token: str) -> tuple[dt.datetime, str] | None:
    if not token:
        return None
    try:
        when, event_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        parsed = dt.datetime.fromisoformat(when)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument("page_token: not a token this service issued") from exc
    if not isinstance(event_id, str) or not is_event_id(event_id):
        raise InvalidArgument("page_token: not a token this service issued")
    return parsed, event_id


class MatchQueries:
    def __init__(self, reports: MatchReports) -> None:
        self._reports = reports

    async def page(
        self,
        tenant_id: str,
        *,
        start: dt.datetime | None,
        end: dt.datetime | None,
        stages: Sequence[Stage] = (),
        max_margin: float | None = None,
        page_size: int = 0,
        page_token: str = "",
        gateway: str = "",
        funnel_id: str = "",
    ) -> Page:
        if page_size < 0:
            raise InvalidArgument("page_size: must not be negative")
        if start and end and start >= end:
            raise InvalidArgument("start_time: must be before end_time")
        try:
            funnel = str(uuid.UUID(funnel_id)) if funnel_id else None
        except ValueError as exc:
            raise InvalidArgument("funnel_id: give the funnel's UUID") from exc
        size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
        rows = await self._reports.list_summaries(
            PageFilter(
                tenant(tenant_id),
                start,
                end,
                stages,
                max_margin,
                _decode(page_token),
                size + 1,
                gateway=gateway or None,
                funnel_id=funnel,
            ),
        )
        more = len(rows) > size
        rows = rows[:size]
        return Page(rows, _encode(rows[-1]) if more else "")

    async def explain(
        self, tenant_id: str, *, event_id: str = "", conversion_id: str = ""
    ) -> SummaryRow:
        t = tenant(tenant_id)
        if event_id:
            row = await self._reports.by_event_id(t, event_id)
        elif conversion_id:
            try:
                conversion = str(uuid.UUID(conversion_id))
            except ValueError as exc:
                raise InvalidArgument("conversion_id: not a UUID") from exc
            row = await self._reports.by_conversion_id(t, conversion)
        else:
            raise InvalidArgument("subject: give a conversion_id or an event_id")
        if row is None:
            raise NotFound("no match recorded for that conversion")
        return row

    async def by_conversions(
        self, tenant_id: str, conversion_ids: Sequence[str]
    ) -> list[tuple[str, SummaryRow]]:
        """The match of each conversion that has one (malformed ids have none)."""
        t = tenant(tenant_id)
        if len(conversion_ids) > MAX_BATCH:
            raise InvalidArgument(f"conversion_ids: at most {MAX_BATCH}")
        wanted = []
        for value in dict.fromkeys(conversion_ids):
            try:
                wanted.append(str(uuid.UUID(value)))
            except ValueError:
                continue
        return await self._reports.by_conversion_ids(t, wanted) if wanted else []

    async def stats(self, tenant_id: str, start_day: str, end_day: str) -> list[DayStats]:
        t = tenant(tenant_id)
        try:
            first = dt.date.fromisoformat(start_day)
            last = dt.date.fromisoformat(end_day)
        except ValueError as exc:
            raise InvalidArgument("start_day/end_day: ISO dates (YYYY-MM-DD)") from exc
        if last < first:
            raise InvalidArgument("end_day: before start_day")
        if (last - first).days >= MAX_STATS_DAYS:
            raise InvalidArgument(f"range: at most {MAX_STATS_DAYS} days")
        found = await self._reports.daily_stats(t, first, last)
        days = []
        day = first
        while day <= last:
            days.append(found.get(day) or DayStats(day, 0, 0, 0, 0, 0, 0.0, 0))
            day += dt.timedelta(days=1)
        return days
