"""The DLQ page's use cases and the overview's banners over in-memory ports: a replay never
reaches another tenant's event, repeats nothing and names who asked; the overview orders its
banners by urgency and still opens when a service is away. No network."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from trackai_console.domain.accounts import User
from trackai_console.domain.dead_letters import DeadLetter, ReplayOutcome
from trackai_console.domain.health import Coverage, CredentialRefusal, DestinationHealth
from trackai_console.domain.quality import DayQuality
from trackai_console.service_layer.dead_letters import DeadLetters, requested_by
from trackai_console.service_layer.overview import REFUSALS_WINDOW, BuildOverview
from trackai_console.service_layer.ports import (
    DeadLetterPage,
    SourceUnavailable,
    WebhookReport,
)
from trackai_console.service_layer.quality import Quality

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
USER = User(uuid.uuid4(), "seller", uuid.uuid4(), disabled=False, has_password=True, created_at=NOW)


def dead(event_id: str) -> DeadLetter:
    return DeadLetter(event_id, "Purchase", "meta_rejected", "", 100, 3, NOW, NOW, replayable=True)


class Queue:
    """One tenant's dead events; records every call."""

    def __init__(self, tenant_id: str, event_ids: list[str], *, more: bool = False) -> None:
        self.tenant_id = tenant_id
        self.event_ids = event_ids
        self.more = more
        self.calls: list[tuple[Any, ...]] = []

    async def dead_letters(
        self, tenant_id: str, *, reason: str, since: datetime | None, page_token: str
    ) -> DeadLetterPage:
        self.calls.append(("page", tenant_id, reason, since, page_token))
        mine = self.event_ids if tenant_id == self.tenant_id else []
        return DeadLetterPage([dead(e) for e in mine], "next" if self.more else "")

    async def owns(self, tenant_id: str, event_id: str) -> bool:
        return tenant_id == self.tenant_id and event_id in self.event_ids

    async def replay_event(self, event_id: str, requested_by: str) -> ReplayOutcome:
        self.calls.append(("replay", event_id, requested_by))
        return ReplayOutcome(selected=1, replayed=1)

    async def replay_matching(
        self, tenant_id: str, *, reason: str, since: datetime | None, requested_by: str
    ) -> ReplayOutcome:
        self.calls.append(("matching", tenant_id, reason, since, requested_by))
        return ReplayOutcome()


async def test_replay_skips_other_tenants_events_and_repeats() -> None:
    queue = Queue("t1", ["e1", "e2"])
    outcome = await DeadLetters(queue).replay("t1", USER, ["e1", "e1", "theirs", "e2"])
    assert [c for c in queue.calls if c[0] == "replay"] == [
        ("replay", "e1", f"console:{USER.id}"),
        ("replay", "e2", f"console:{USER.id}"),
    ]
    assert (outcome.selected, outcome.replayed, outcome.refused) == (3, 2, ["theirs"])


async def test_the_period_becomes_the_since_of_page_and_bulk_replay() -> None:
    queue = Queue("t1", ["e1"])
    letters = DeadLetters(queue, clock=lambda: NOW)
    await letters.page("t1", reason="meta_rejected", period="7d")
    await letters.page("t1", reason="", period="tudo", page_token="p2")
    await letters.replay_matching("t1", USER, reason="", period="30d")
    assert queue.calls == [
        ("page", "t1", "meta_rejected", NOW - timedelta(days=7), ""),
        ("page", "t1", "", None, "p2"),
        ("matching", "t1", "", NOW - timedelta(days=30), requested_by(USER)),
    ]


class Stats:
    def __init__(self, emq: float) -> None:
        self.emq = emq

    async def daily(self, tenant_id: str, start_day: str, end_day: str) -> list[DayQuality]:
        return [DayQuality(end_day, 4, self.emq, 0)]


class History:
    async def save(self, tenant_id: str, days: object) -> None: ...

    async def days(self, tenant_id: str, start: date, end: date) -> list[DayQuality]:
        return []

    async def averages(self, tenant_ids: object, start: date) -> dict[str, tuple[int, float]]:
        return {}


class Delivery:
    def __init__(self, breaker: str = "closed", *, down: bool = False) -> None:
        self.breaker = breaker
        self.down = down

    async def destinations(self, tenant_id: str | None) -> list[DestinationHealth]:
        if self.down:
            raise SourceUnavailable("dispatcher")
        return [DestinationHealth("t1", "px1", self.breaker, 5, 500, "", None, None, 0)]

    async def coverage(self, tenant_id: str, start: datetime, end: datetime) -> Coverage:
        return Coverage(0, {})


class Webhooks:
    def __init__(self) -> None:
        self.since_asked: list[datetime] = []

    async def since(self, tenant_id: str, since: datetime) -> WebhookReport:
        self.since_asked.append(since)
        refusal = CredentialRefusal("kiwify", "kiwify_signature", 2, NOW)
        return WebhookReport([refusal], NOW)


def overview(delivery: Delivery, queue: Queue, webhooks: Webhooks, emq: float) -> BuildOverview:
    quality = Quality(Stats(emq), History(), delivery, clock=lambda: NOW)
    return BuildOverview(quality, DeadLetters(queue), delivery, webhooks, clock=lambda: NOW)


async def test_overview_banners_most_urgent_first() -> None:
    webhooks = Webhooks()
    build = overview(Delivery("open"), Queue("t1", ["e1"], more=True), webhooks, emq=4.0)
    page = await build("t1")
    assert [b.link for b in page.banners] == [
        "/eventos?status=failed",
        "/configuracao/checkout",
        "/dlq",
        "/emq",
    ]
    assert "pixel px1" in page.banners[0].message
    assert page.banners[2].message.startswith("1+ evento(s)")
    assert (page.dead_letters, page.today, page.unavailable) == (1, 4, False)
    assert webhooks.since_asked == [NOW - REFUSALS_WINDOW]


async def test_overview_without_trouble_has_only_the_refusal_banner() -> None:
    page = await overview(Delivery(), Queue("t1", []), Webhooks(), emq=8.0)("t1")
    assert [b.link for b in page.banners] == ["/configuracao/checkout"]


async def test_overview_opens_without_numbers_when_a_service_is_away() -> None:
    page = await overview(Delivery(down=True), Queue("t1", ["e1"]), Webhooks(), emq=8.0)("t1")
    assert page.unavailable
    assert (page.banners, page.dead_letters, page.today) == ([], 0, 0)
