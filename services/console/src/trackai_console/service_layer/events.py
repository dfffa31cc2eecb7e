"""Events page use cases: a page of a tenant's conversions with their match and delivery, and
one conversion in detail. The tenant always comes from the caller's session (see ``scope``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from trackai_console.domain.accounts import User
from trackai_console.domain.events import (
    UNMATCHED_STATUSES,
    Attempt,
    Conversion,
    EventFilter,
    EventRow,
    Explanation,
)
from trackai_console.service_layer.ports import EventSource, Funnel, TenantSummary

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
PAGE_SIZE = 25
#: Source pages read at most to fill one page when rows are dropped after the read (what the
#: driving owner could not filter), each SCAN_GROWTH times the last, up to MAX_SOURCE_PAGE:
#: 100, 200, 200, 200 rows when the filter is known to be checked after the read, else 25, 100,
#: 200, 200 (dead, probabilistic and Kiwify at 1M: p95 134 ms in 4 pages of 25, see
#: docs/benchmarks.md).
MAX_SCANNED_PAGES = 4
SCAN_GROWTH = 4
MAX_SOURCE_PAGE = 200
#: No further source page is read once this much time went into the page, leaving room for one
#: more round (the largest, 200 rows: ~30 ms at 1M) within the 100 ms a page may take: a rare
#: combination answers with the rows found so far and the token to read on ("Carregar mais")
#: instead of keeping the seller waiting (status "received" at 1M, none to find: p95 106 ms in
#: 4 pages without the budget, 92 ms with 60 ms, see docs/benchmarks.md).
SCAN_BUDGET_S = 0.04


class NotVisible(LookupError):
    """Absent, or another tenant's: the page answers 404 either way."""


def scope(user: User, chosen_tenant: str) -> str | None:
    """The tenant a request reads. A seller's is their own, whatever the URL says; an operator's
    is the one they chose (None until they choose)."""
    if user.tenant_id is not None:
        return str(user.tenant_id)
    return chosen_tenant or None


@dataclass(frozen=True)
class EventsPage:
    rows: list[EventRow]
    next_token: str


@dataclass(frozen=True)
class EventDetail:
    row: EventRow
    explanation: Explanation | None
    attempts: list[Attempt]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Events:
    def __init__(
        self,
        source: EventSource,
        *,
        clock: Callable[[], datetime] = _utcnow,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._clock = clock
        self._timer = timer

    async def _row(self, tenant_id: str, row: EventRow) -> tuple[EventRow, Explanation | None]:
        explanation = await self._source.match(tenant_id, row.conversion.id)
        match = explanation.match if explanation else None
        delivery = await self._source.delivery(tenant_id, match.event_id) if match else None
        return EventRow(row.conversion, match, delivery), explanation

    async def _rows(
        self, tenant_id: str, conversions: list[Conversion], where: EventFilter
    ) -> list[EventRow]:
        """A page's rows with two reads whatever its size: every match, then every delivery.
        A filter on a status only an unmatched sale has drops the matched ones first and reads
        no delivery (an unmatched sale has none)."""
        matches = await self._source.matches(tenant_id, [c.id for c in conversions])
        if where.status in UNMATCHED_STATUSES:
            return [EventRow(c) for c in conversions if c.id not in matches]
        deliveries = await self._source.deliveries(
            tenant_id, list(dict.fromkeys(m.event_id for m in matches.values()))
        )
        rows = []
        for conversion in conversions:
            match = matches.get(conversion.id)
            delivery = deliveries.get(match.event_id) if match else None
            rows.append(EventRow(conversion, match, delivery))
        return rows

    async def page(self, tenant_id: str, where: EventFilter, page_token: str = "") -> EventsPage:
        """Newest first, keyset-paginated by the driving owner's token (``EventFilter.source``:
        the one that filters at its source), prefixed with that owner's letter. What the source
        could not filter is dropped after the read, reading at most ``MAX_SCANNED_PAGES`` of its
        pages; a short page still carries the token to read on."""
        now = self._clock()
        midnight = now.astimezone(SAO_PAULO).replace(hour=0, minute=0, second=0, microsecond=0)
        since = where.since(now, midnight)
        source = where.source()
        read = {
            "ingestion": self._by_conversion,
            "dispatcher": self._by_delivery,
            "matcher": self._by_match,
        }[source]
        prefix = source[0] + "."
        # A token from another filter's source (an edited URL) starts from the first page.
        token = page_token.removeprefix(prefix) if page_token.startswith(prefix) else ""
        rows: list[EventRow] = []
        # A filter checked after the read starts with a larger source page: the rarer the rows
        # it keeps, the fewer round trips (dead + probabilistic + one gateway: one instead of 2).
        size = PAGE_SIZE * SCAN_GROWTH if where.checked_after_read() else PAGE_SIZE
        started = self._timer()
        for _ in range(MAX_SCANNED_PAGES):
            found, token = await read(tenant_id, where, since, token, size)
            kept = [row for row in found if where.keeps(row)]
            rows.extend(kept)
            # Read on only while rows are dropped here (a full source page is a full page), in
            # larger pages: one round trip each, whatever their size.
            if not token or len(rows) >= PAGE_SIZE or len(kept) == len(found):
                break
            if self._timer() - started >= SCAN_BUDGET_S:
                break
            size = min(size * SCAN_GROWTH, MAX_SOURCE_PAGE)
        return EventsPage(rows, prefix + token if token else "")

    async def _by_conversion(
        self, tenant_id: str, where: EventFilter, since: datetime | None, token: str, size: int
    ) -> tuple[list[EventRow], str]:
        read = await self._source.conversions(
            tenant_id,
            statuses=where.ingestion_statuses(),
            since=since,
            gateway=where.gateway,
            order_id=where.order_id,
            funnel_id=where.funnel_id,
            page_size=size,
            page_token=token,
        )
        return await self._rows(tenant_id, read.conversions, where), read.next_token

    async def _by_delivery(
        self, tenant_id: str, where: EventFilter, since: datetime | None, token: str, size: int
    ) -> tuple[list[EventRow], str]:
        read = await self._source.delivery_page(
            tenant_id,
            states=where.delivery_states(),
            since=since,
            funnel_id=where.funnel_id,
            stage=where.stage,
            page_size=size,
            page_token=token,
        )
        ids = [conversion_id for conversion_id, _ in read.deliveries]
        conversions, matches = await asyncio.gather(
            self._source.conversions_by_id(tenant_id, ids), self._source.matches(tenant_id, ids)
        )
        rows = [
            EventRow(conversions[c], matches.get(c), delivery)
            for c, delivery in read.deliveries
            if c in conversions
        ]
        return rows, read.next_token

    async def _by_match(
        self, tenant_id: str, where: EventFilter, since: datetime | None, token: str, size: int
    ) -> tuple[list[EventRow], str]:
        read = await self._source.match_page(
            tenant_id,
            stage=where.stage,
            since=since,
            gateway=where.gateway,
            funnel_id=where.funnel_id,
            page_size=size,
            page_token=token,
        )
        ids = [conversion_id for conversion_id, _ in read.matches]
        event_ids = list(dict.fromkeys(m.event_id for _, m in read.matches))
        conversions, deliveries = await asyncio.gather(
            self._source.conversions_by_id(tenant_id, ids),
            self._source.deliveries(tenant_id, event_ids),
        )
        rows = [
            EventRow(conversions[c], match, deliveries.get(match.event_id))
            for c, match in read.matches
            if c in conversions
        ]
        return rows, read.next_token

    async def detail(self, tenant_id: str, conversion_id: str) -> EventDetail:
        conversion = await self._source.conversion(tenant_id, conversion_id)
        if conversion is None:
            raise NotVisible(conversion_id)
        row, explanation = await self._row(tenant_id, EventRow(conversion))
        attempts = await self._source.attempts(tenant_id, row.match.event_id) if row.match else []
        return EventDetail(row, explanation, attempts)

    async def funnels(self, tenant_id: str) -> list[Funnel]:
        return await self._source.funnels(tenant_id)

    async def tenants(self) -> list[TenantSummary]:
        return await self._source.tenants()
