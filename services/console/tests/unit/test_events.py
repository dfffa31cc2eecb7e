"""The status a seller reads and the events filters (pure logic)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from trackai_console.domain.accounts import User
from trackai_console.domain.events import (
    Conversion,
    Delivery,
    EventFilter,
    EventRow,
    Match,
    console_status,
)
from trackai_console.service_layer.events import (
    MAX_SCANNED_PAGES,
    MAX_SOURCE_PAGE,
    PAGE_SIZE,
    SCAN_BUDGET_S,
    Events,
    scope,
)
from trackai_console.service_layer.ports import ConversionPage, DeliveryPage, MatchPage

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def _conversion(status: str = "approved") -> Conversion:
    return Conversion(
        id="c1", order_id="o1", gateway="kiwify", status=status, gateway_status="paid",
        event_time=NOW, received_time=NOW, amount="197.00", currency="BRL",
        product_name="Curso", payment_method="pix", funnel_id="",
    )  # fmt: skip


MATCH = Match("ev1", "Purchase", "deterministic", 1.0, 7.5, 0.0)


@pytest.mark.parametrize(
    ("status", "match", "delivery", "expected"),
    [
        ("approved", None, None, "received"),
        ("pending_payment", None, None, "pending_payment"),
        ("refunded", None, None, "ignored"),
        ("approved", MATCH, None, "matched"),
        ("approved", MATCH, Delivery("pending", 0, ""), "matched"),
        ("approved", MATCH, Delivery("sent", 1, ""), "sent"),
        ("approved", MATCH, Delivery("retrying", 2, "timeout"), "failed"),
        ("approved", MATCH, Delivery("parked", 2, "breaker"), "failed"),
        ("approved", MATCH, Delivery("dead", 5, "meta_permanent"), "dead"),
        ("approved", MATCH, Delivery("expired", 0, "older than 7 days"), "expired"),
        ("pending_payment", MATCH, Delivery("sent", 1, ""), "sent"),
    ],
)
def test_the_status_is_the_furthest_step_reached(
    status: str, match: Match | None, delivery: Delivery | None, expected: str
) -> None:
    assert console_status(_conversion(status), match, delivery) == expected


def test_filters_drop_unknown_values_instead_of_failing() -> None:
    where = EventFilter.parse(
        status="hacked", gateway="evil", stage="x", funnel_id="1; drop", period="ever",
        order_id="  123  ",
    )  # fmt: skip
    assert where == EventFilter(order_id="123")


def test_status_and_stage_filters_apply_after_the_read() -> None:
    row = EventRow(_conversion(), MATCH, Delivery("sent", 1, ""))
    assert EventFilter(status="sent").keeps(row)
    assert not EventFilter(status="dead").keeps(row)
    assert EventFilter(stage="deterministic").keeps(row)
    assert not EventFilter(stage="probabilistic").keeps(row)
    assert EventFilter(status="pending_payment").ingestion_statuses() == ("pending_payment",)


def test_a_seller_always_reads_their_own_tenant() -> None:
    mine, other = uuid.uuid4(), str(uuid.uuid4())
    seller = User(uuid.uuid4(), "seller", mine, False, True, NOW)
    operator = User(uuid.uuid4(), "operator", None, False, True, NOW)
    assert scope(seller, other) == str(mine)
    assert scope(seller, "") == str(mine)
    assert scope(operator, other) == other
    assert scope(operator, "") is None


class CountingSource:
    """An EventSource double that answers a page of 25 conversions and counts each read."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.conversions_ = [
            replace(_conversion(), id=f"c{i}", order_id=f"o{i}") for i in range(PAGE_SIZE)
        ]

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    async def conversions(self, tenant_id: str, **_: Any) -> ConversionPage:
        self._count("conversions")
        return ConversionPage(self.conversions_, "")

    async def matches(self, tenant_id: str, conversion_ids: list[str]) -> dict[str, Match]:
        self._count("matches")
        # Even conversions matched; two of them to the same event (a pix and its approval).
        return {
            c: replace(MATCH, event_id=f"ev{min(i, 2)}")
            for i, c in enumerate(conversion_ids)
            if i % 2 == 0
        }

    async def deliveries(self, tenant_id: str, event_ids: list[str]) -> dict[str, Delivery]:
        self._count("deliveries")
        assert len(event_ids) == len(set(event_ids))
        return {e: Delivery("sent", 1, "") for e in event_ids if e != "ev2"}

    async def match(self, tenant_id: str, conversion_id: str) -> None:
        self._count("match")

    async def delivery(self, tenant_id: str, event_id: str) -> None:
        self._count("delivery")


async def test_a_page_of_events_is_read_in_three_calls_whatever_its_size() -> None:
    source = CountingSource()
    page = await Events(source, clock=lambda: NOW).page("t1", EventFilter())  # type: ignore[arg-type]
    assert source.calls == {"conversions": 1, "matches": 1, "deliveries": 1}
    assert len(page.rows) == PAGE_SIZE
    statuses = [row.status for row in page.rows]
    assert statuses[:4] == ["sent", "received", "matched", "received"]
    assert page.rows[0].match is not None and page.rows[0].match.event_id == "ev0"


@pytest.mark.parametrize(
    ("where", "source"),
    [
        (EventFilter(), "ingestion"),
        (EventFilter(gateway="kiwify", period="hoje"), "ingestion"),
        (EventFilter(status="dead", order_id="o1"), "ingestion"),
        (EventFilter(status="received"), "ingestion"),
        (EventFilter(status="pending_payment", stage="none"), "ingestion"),
        (EventFilter(status="ignored"), "ingestion"),
        (EventFilter(status="dead", stage="probabilistic", gateway="kiwify"), "dispatcher"),
        (EventFilter(status="matched"), "dispatcher"),
        (EventFilter(status="failed"), "dispatcher"),
        (EventFilter(stage="probabilistic"), "matcher"),
        (EventFilter(funnel_id=str(uuid.UUID(int=1)), gateway="hotmart"), "matcher"),
    ],
)
def test_the_owner_that_filters_at_its_source_drives_the_page(
    where: EventFilter, source: str
) -> None:
    assert where.source() == source


class DrivenSource(CountingSource):
    """The dispatcher's and the matcher's lists: 25 entries a page, 3 pages, every third
    conversion a Hotmart sale; records what each list was asked."""

    def __init__(self, gateways: tuple[str, ...] = ("hotmart", "kiwify", "kiwify")) -> None:
        super().__init__()
        self.asked: list[dict[str, Any]] = []
        self.gateways = gateways

    def _page(self, token: str) -> tuple[list[str], str]:
        number = int(token or "0")
        ids = [f"c{number}-{i}" for i in range(PAGE_SIZE)]
        return ids, str(number + 1) if number < 2 else ""

    async def delivery_page(self, tenant_id: str, **asked: Any) -> DeliveryPage:
        self._count("delivery_page")
        self.asked.append(asked)
        ids, token = self._page(asked["page_token"])
        return DeliveryPage([(c, Delivery("dead", 5, "meta_permanent")) for c in ids], token)

    async def match_page(self, tenant_id: str, **asked: Any) -> MatchPage:
        self._count("match_page")
        self.asked.append(asked)
        ids, token = self._page(asked["page_token"])
        return MatchPage([(c, replace(MATCH, event_id=f"ev-{c}")) for c in ids], token)

    async def conversions_by_id(self, tenant_id: str, ids: list[str]) -> dict[str, Conversion]:
        self._count("conversions_by_id")
        return {
            c: replace(_conversion(), id=c, gateway=self.gateways[i % len(self.gateways)])
            for i, c in enumerate(ids)
            if not c.endswith("-6")  # one conversion ingestion no longer has: left out
        }


async def test_a_delivery_status_page_is_driven_by_the_dispatcher() -> None:
    source = DrivenSource()
    events = Events(source, clock=lambda: NOW, timer=lambda: 0.0)  # type: ignore[arg-type]
    page = await events.page("t1", EventFilter(status="failed", stage="probabilistic"))
    assert source.asked[0] == {
        "states": ("retrying", "parked"),
        "since": NOW - timedelta(days=7),
        "funnel_id": "",
        "stage": "probabilistic",
        "page_size": PAGE_SIZE,
        "page_token": "",
    }
    # "dead" rows are dropped after the read (the status is checked on every row)...
    assert page.rows == [] and len(source.asked) == MAX_SCANNED_PAGES - 1
    # Each page read on is larger: one round trip each, whatever its size.
    assert [a["page_size"] for a in source.asked] == [PAGE_SIZE, 4 * PAGE_SIZE, MAX_SOURCE_PAGE]
    # ...and so is a filter the dispatcher cannot apply (the gateway): 9 Hotmart sales in each
    # page of 25, one of them (c*-6) gone from ingestion, read on until the last page.
    page = await events.page("t1", EventFilter(status="dead", gateway="hotmart"))
    assert [r.conversion.id for r in page.rows][:3] == ["c0-0", "c0-3", "c0-9"]
    assert {r.status for r in page.rows} == {"dead"} and len(page.rows) == 3 * 8
    assert {r.conversion.gateway for r in page.rows} == {"hotmart"} and page.next_token == ""
    assert page.rows[0].match is not None and page.rows[0].match.event_id == "ev0"


async def test_a_stage_page_is_driven_by_the_matcher_and_its_token_names_it() -> None:
    source = DrivenSource(gateways=("kiwify",))
    events = Events(source, clock=lambda: NOW, timer=lambda: 0.0)  # type: ignore[arg-type]
    where = EventFilter(stage="deterministic", gateway="kiwify", period="tudo")
    first = await events.page("t1", where)
    assert source.asked[0]["gateway"] == "kiwify" and source.asked[0]["since"] is None
    assert source.calls == {"match_page": 1, "conversions_by_id": 1, "deliveries": 1}
    # 24 rows (c0-6 is gone from ingestion) and the token to read on: no second read.
    assert len(first.rows) == PAGE_SIZE - 1 and first.next_token == "m.1"
    assert first.rows[0].match is not None and first.rows[0].match.event_id == "ev-c0-0"
    assert first.rows[0].delivery == Delivery("sent", 1, "")
    second = await events.page("t1", where, first.next_token)
    assert second.rows[0].conversion.id == "c1-0"
    # A token another filter's source issued (an edited URL) starts from the first page.
    again = await events.page("t1", where, "d.1")
    assert again.rows[0].conversion.id == "c0-0"


async def test_a_status_only_unmatched_sales_have_reads_no_delivery() -> None:
    source = CountingSource()
    page = await Events(source, clock=lambda: NOW).page("t1", EventFilter(status="received"))  # type: ignore[arg-type]
    assert source.calls == {"conversions": 1, "matches": 1}
    assert [r.conversion.id for r in page.rows] == [f"c{i}" for i in range(1, PAGE_SIZE, 2)]
    assert {r.status for r in page.rows} == {"received"}


async def test_no_further_source_page_is_read_once_the_time_budget_is_spent() -> None:
    source = DrivenSource()
    ticks = iter([0.0, SCAN_BUDGET_S / 2, SCAN_BUDGET_S])  # start, after page 1, after page 2
    events = Events(source, clock=lambda: NOW, timer=lambda: next(ticks))  # type: ignore[arg-type]
    page = await events.page("t1", EventFilter(status="dead", gateway="hotmart"))
    assert len(source.asked) == 2 and len(page.rows) == 2 * 8
    # The gateway is checked after the dispatcher's read: its first page is already larger.
    assert [a["page_size"] for a in source.asked] == [4 * PAGE_SIZE, MAX_SOURCE_PAGE]
    assert page.next_token == "d.2"  # the seller reads on with "Carregar mais"


@pytest.mark.parametrize(
    ("where", "checked"),
    [
        (EventFilter(), False),
        (EventFilter(status="received"), True),
        (EventFilter(stage="none", order_id="o1"), True),
        (EventFilter(status="dead", stage="none", funnel_id=str(uuid.UUID(int=1))), False),
        (EventFilter(status="dead", gateway="kiwify"), True),
        (EventFilter(stage="probabilistic", gateway="kiwify"), False),
    ],
)
def test_what_is_checked_after_the_read(where: EventFilter, checked: bool) -> None:
    assert where.checked_after_read() is checked
