"""MatcherService's read use cases over an in-memory ``MatchReports``: validation, paging tokens,
batch limits and the filled-in day range. No database."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pytest

from trackai_matcher.domain.model import Stage
from trackai_matcher.service_layer.ports import DayStats, PageFilter, SummaryRow
from trackai_matcher.service_layer.queries import (
    MAX_BATCH,
    MAX_STATS_DAYS,
    InvalidArgument,
    MatchQueries,
    NotFound,
)

TENANT = "6f1c2a6e-4d4b-4c8e-9d59-2a1f0e3b7c11"
T = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def summary(n: int, *, conversion_id: str | None = None) -> SummaryRow:
    return SummaryRow(
        conversion_id=conversion_id,
        order_id=f"order-{n}",
        gateway="hotmart",
        event_id=f"{n:064x}",
        event_name="Purchase",
        stage=Stage.DETERMINISTIC,
        session_id=f"s{n}",
        click_id=n,
        score=None,
        runner_up_score=None,
        emq=7.5,
        event_time=T - dt.timedelta(minutes=n),
        matched_at=T,
        evidence={},
    )


@dataclass
class Reports:
    """The rows a tenant has, newest first; records what the use case asked for."""

    rows: list[SummaryRow] = field(default_factory=list)
    days: dict[dt.date, DayStats] = field(default_factory=dict)
    filters: list[PageFilter] = field(default_factory=list)
    asked: list[tuple[str, object]] = field(default_factory=list)

    async def list_summaries(self, f: PageFilter) -> list[SummaryRow]:
        self.filters.append(f)
        rows = [r for r in self.rows if f.after is None or (r.event_time, r.event_id) < f.after]
        return rows[: f.limit]

    async def by_event_id(self, tenant_id: str, event_id: str) -> SummaryRow | None:
        self.asked.append((tenant_id, event_id))
        return next((r for r in self.rows if r.event_id == event_id), None)

    async def by_conversion_id(self, tenant_id: str, conversion_id: str) -> SummaryRow | None:
        self.asked.append((tenant_id, conversion_id))
        return next((r for r in self.rows if r.conversion_id == conversion_id), None)

    async def by_conversion_ids(
        self, tenant_id: str, conversion_ids: Sequence[str]
    ) -> list[tuple[str, SummaryRow]]:
        self.asked.append((tenant_id, list(conversion_ids)))
        return [(r.conversion_id, r) for r in self.rows if r.conversion_id in conversion_ids]

    async def daily_stats(
        self, tenant_id: str, first: dt.date, last: dt.date
    ) -> dict[dt.date, DayStats]:
        self.asked.append((tenant_id, (first, last)))
        return {d: s for d, s in self.days.items() if first <= d <= last}


async def test_pages_follow_their_token_to_the_end() -> None:
    reports = Reports(rows=[summary(n) for n in range(5)])
    queries = MatchQueries(reports)
    seen: list[str] = []
    token = ""
    for _ in range(3):
        page = await queries.page(
            TENANT.upper(), start=None, end=None, page_size=2, page_token=token
        )
        seen += [r.order_id for r in page.rows]
        token = page.next_token
        if not token:
            break
    assert seen == [f"order-{n}" for n in range(5)]
    assert token == ""
    # One row more than the page is read, to know whether another page follows; the tenant
    # arrives canonical.
    assert [f.limit for f in reports.filters] == [3, 3, 3]
    assert {f.tenant_id for f in reports.filters} == {TENANT}


async def test_page_size_defaults_and_is_capped() -> None:
    reports = Reports()
    queries = MatchQueries(reports)
    await queries.page(TENANT, start=None, end=None)
    await queries.page(TENANT, start=None, end=None, page_size=10**6)
    assert [f.limit for f in reports.filters] == [101, 1001]


@pytest.mark.parametrize(
    ("tenant", "kwargs", "field_name"),
    [
        ("not-a-uuid", {}, "tenant_id"),
        (TENANT, {"page_size": -1}, "page_size"),
        (TENANT, {"page_token": "%%%"}, "page_token"),
        (
            TENANT,
            {"page_token": "WyIyMDI2LTAzLTAxIiwgIngiXQ=="},
            "page_token",
        ),  # ["2026-03-01", "x"]
    ],
)
async def test_a_bad_page_request_names_its_field(
    tenant: str, kwargs: dict[str, object], field_name: str
) -> None:
    reports = Reports()
    with pytest.raises(InvalidArgument, match=field_name):
        await MatchQueries(reports).page(tenant, start=None, end=None, **kwargs)  # type: ignore[arg-type]
    assert reports.filters == []


async def test_explain_by_event_or_conversion() -> None:
    conversion = str(uuid.uuid4())
    row = summary(1, conversion_id=conversion)
    reports = Reports(rows=[row])
    queries = MatchQueries(reports)
    assert await queries.explain(TENANT, event_id=row.event_id) == row
    assert await queries.explain(TENANT, conversion_id=conversion.upper()) == row
    assert reports.asked == [(TENANT, row.event_id), (TENANT, conversion)]
    with pytest.raises(NotFound):
        await queries.explain(TENANT, event_id=summary(2).event_id)
    with pytest.raises(InvalidArgument, match="conversion_id"):
        await queries.explain(TENANT, conversion_id="nope")
    with pytest.raises(InvalidArgument, match="subject"):
        await queries.explain(TENANT)


async def test_batch_skips_malformed_and_repeated_ids() -> None:
    conversion = str(uuid.uuid4())
    row = summary(1, conversion_id=conversion)
    reports = Reports(rows=[row])
    queries = MatchQueries(reports)
    found = await queries.by_conversions(TENANT, [conversion, "garbage", conversion])
    assert found == [(conversion, row)]
    assert reports.asked == [(TENANT, [conversion])]
    # Nothing valid: no read at all.
    assert await queries.by_conversions(TENANT, ["garbage"]) == []
    assert len(reports.asked) == 1
    with pytest.raises(InvalidArgument, match=str(MAX_BATCH)):
        await queries.by_conversions(TENANT, [conversion] * (MAX_BATCH + 1))


async def test_stats_fill_every_day_of_the_range() -> None:
    day = dt.date(2026, 3, 2)
    stats = DayStats(day, 4, 2, 1, 1, 0, 8.0, 0)
    reports = Reports(
        days={day: stats, dt.date(2026, 3, 9): replace(stats, day=dt.date(2026, 3, 9))}
    )
    days = await MatchQueries(reports).stats(TENANT, "2026-03-01", "2026-03-03")
    assert [d.day for d in days] == [dt.date(2026, 3, d) for d in (1, 2, 3)]
    assert days[1] == stats
    assert days[0] == DayStats(dt.date(2026, 3, 1), 0, 0, 0, 0, 0, 0.0, 0)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-03-01", "March 3", "ISO"),
        ("2026-03-03", "2026-03-01", "before"),
        (
            "2025-01-01",
            (dt.date(2025, 1, 1) + dt.timedelta(days=MAX_STATS_DAYS)).isoformat(),
            "366",
        ),
    ],
)
async def test_a_bad_stats_range_is_refused_before_reading(
    start: str, end: str, message: str
) -> None:
    reports = Reports()
    with pytest.raises(InvalidArgument, match=message):
        await MatchQueries(reports).stats(TENANT, start, end)
    assert reports.asked == []
