"""The EMQ history job: a round per period until the process stops, a failed round logged and
not fatal (a crashed background task would stop the console)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial

from trackai_console.domain.health import Coverage
from trackai_console.domain.quality import DayQuality
from trackai_console.service_layer.ports import TenantSummary
from trackai_console.service_layer.quality import COVERAGE_TTL, Quality

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


class Stats:
    async def daily(self, tenant_id: str, start_day: str, end_day: str) -> list[DayQuality]:
        return [DayQuality(start_day, 2, 7.0, 0), DayQuality(end_day, 1, 5.0, 1)]


class History:
    def __init__(self, fail_first: bool) -> None:
        self.saved: list[tuple[str, list[str]]] = []
        self.rounds = 0
        self.fail_first = fail_first
        self.stored = asyncio.Event()

    async def save(self, tenant_id: str, days: Sequence[DayQuality]) -> None:
        self.rounds += 1
        if self.fail_first and self.rounds == 1:
            raise ConnectionError("database away")
        self.saved.append((tenant_id, [d.day for d in days]))
        self.stored.set()

    async def days(self, tenant_id: str, start: date, end: date) -> list[DayQuality]:
        return []

    async def averages(
        self, tenant_ids: Sequence[str], start: date
    ) -> dict[str, tuple[int, float]]:
        return {}


class Delivery:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def destinations(self, tenant_id: str | None) -> list[object]:
        return []

    async def coverage(self, tenant_id: str, start: datetime, end: datetime) -> Coverage:
        self.asked.append(tenant_id)
        return Coverage(len(self.asked), {})


async def _tenants() -> list[TenantSummary]:
    return [TenantSummary("t1", "Loja")]


async def test_the_history_loop_runs_as_a_background_task_and_survives_a_failed_round() -> None:
    history = History(fail_first=True)
    quality = Quality(Stats(), history, Delivery(), clock=lambda: NOW)  # type: ignore[arg-type]
    stop = asyncio.Event()
    # Called as the kit's runner calls a background task: with the stop event only.
    task = asyncio.create_task(partial(quality.keep_history, _tenants, 0.01)(stop))
    await asyncio.wait_for(history.stored.wait(), 5)
    assert history.saved[0] == ("t1", ["2026-12-06", "2026-12-07"])
    stop.set()
    await asyncio.wait_for(task, 5)
    assert history.rounds >= 2


async def test_coverage_is_reused_for_a_few_minutes_per_tenant() -> None:
    now = [NOW]
    delivery = Delivery()
    quality = Quality(Stats(), History(False), delivery, clock=lambda: now[0])  # type: ignore[arg-type]
    first = await quality.coverage("t1")
    assert await quality.coverage("t1") == first
    await quality.coverage("t2")
    assert delivery.asked == ["t1", "t2"]
    now[0] += COVERAGE_TTL - timedelta(seconds=1)
    assert await quality.coverage("t1") == first
    now[0] += timedelta(seconds=2)
    assert (await quality.coverage("t1")).events == 3
    assert delivery.asked == ["t1", "t2", "t1"]
    # The quality page always asks (and renews what the overview reuses).
    assert (await quality.coverage("t1", fresh=True)).events == 4
    assert (await quality.coverage("t1")).events == 4
