"""The three matching stages over an in-memory CandidateStore: which exact branch decides, that
stage 3 is asked only when stages 1-2 found nothing and the purchase has an IP or user agent,
and that the tenant's profile is read once per cache period. No database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from trackai_matcher.domain.model import Click, Purchase, Stage, Tracking
from trackai_matcher.domain.scoring import ModelParams, ProbabilisticModel, ValueCounts
from trackai_matcher.service_layer.matching import MatchEngine, ProfileCache, build_profile
from trackai_matcher.service_layer.ports import ProbabilisticCandidates, Row

T = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
UA = "Mozilla/5.0 (Linux; Android 14) Chrome/126.0 Mobile Safari/537.36"
CONN: Any = object()


def click(n: int, *, minutes: int = 30, ip: str | None = "200.1.2.3") -> Click:
    return Click(
        id=n, session_id=f"session-{n:04d}", first_seen_at=T - dt.timedelta(minutes=minutes + 5),
        last_seen_at=T - dt.timedelta(minutes=minutes), fbclid=None, fbc=None, fbp=None,
        client_ip=ip, ip_network="200.1.2.0/24" if ip else None, user_agent=UA,
        browser_family="Chrome", os_family="Android", device_type="mobile", landing_url=None,
        campaign="", funnel_id=None,
    )  # fmt: skip


def purchase(*, sck: str = "", ip: str | None = None, ua: str = "") -> Purchase:
    return Purchase(
        tenant_id="t", gateway="kiwify", order_id="o", conversion_id=None, status="approved",
        payment_method="pix", event_time=T, amount="97", currency="BRL", product_id="",
        funnel_id=None, tracking=Tracking(sck=sck), client_ip=ip, user_agent=ua, hashed={},
    )  # fmt: skip


@dataclass
class Store:
    exact: list[tuple[str, Click]] = field(default_factory=list)
    candidates: list[Click] = field(default_factory=list)
    sample: list[dict[str, Any]] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)

    async def exact_candidates(
        self, conn: Any, purchase: Purchase, at: dt.datetime, lookback: dt.timedelta
    ) -> list[tuple[str, Click]]:
        self.asked.append("exact")
        return self.exact

    async def probabilistic_candidates(
        self,
        conn: Any,
        tenant_id: str,
        *,
        client_ip: str | None,
        user_agent: str | None,
        at: dt.datetime,
        window: dt.timedelta,
    ) -> ProbabilisticCandidates:
        self.asked.append("probabilistic")
        counts = ValueCounts(len(self.candidates), len(self.candidates), len(self.candidates))
        return ProbabilisticCandidates(self.candidates, counts, "200.1.2.0/24")

    async def tenant_sample(self, conn: Any, tenant_id: str, size: int) -> Sequence[Row]:
        self.asked.append("sample")
        return self.sample


def engine(store: Store) -> MatchEngine:
    return MatchEngine(ProbabilisticModel(ModelParams()), store)


async def decide(store: Store, p: Purchase) -> Any:
    return await engine(store).decide(CONN, p, T, dt.timedelta(days=30))


@pytest.mark.parametrize(
    ("branches", "expected"),
    [
        (["fbp", "fbc", "fbclid", "phone_hash", "email_hash"], (Stage.DETERMINISTIC, "email_hash")),
        (["fbp", "fbc", "phone_hash"], (Stage.DETERMINISTIC, "phone_hash")),
        (["fbp", "fbc", "fbclid"], (Stage.SEMI, "fbclid")),
        (["fbp", "fbc"], (Stage.SEMI, "fbc")),
        (["fbp"], (Stage.SEMI, "fbp")),
    ],
)
async def test_the_strongest_exact_branch_decides(
    branches: list[str], expected: tuple[Stage, str]
) -> None:
    store = Store(exact=[(b, click(i)) for i, b in enumerate(branches)])
    decision = await decide(store, purchase())
    assert (decision.stage, decision.method) == expected
    assert decision.click == click(branches.index(expected[1]))
    assert store.asked == ["exact"]


async def test_a_carried_session_id_beats_everything_and_names_its_carrier() -> None:
    carried = click(7)
    store = Store(exact=[("email_hash", click(1)), ("carrier", carried)])
    decision = await decide(store, purchase(sck=carried.session_id))
    assert (decision.stage, decision.method, decision.click) == (
        Stage.DETERMINISTIC,
        "sck",
        carried,
    )


async def test_a_carrier_row_for_another_value_does_not_decide() -> None:
    store = Store(exact=[("carrier", click(7)), ("fbp", click(2))])
    decision = await decide(store, purchase(sck="session-9999"))
    assert (decision.stage, decision.method) == (Stage.SEMI, "fbp")


@pytest.mark.parametrize("branches", [[], ["fbc"]], ids=["nothing", "semi"])
async def test_a_sale_waiting_for_its_session_asks_only_the_deterministic_stage(
    branches: list[str],
) -> None:
    """Its other stages' answer would be rolled back with the wait (SessionNotSeenYet)."""
    store = Store(exact=[(b, click(i)) for i, b in enumerate(branches)], candidates=[click(1)])
    decision = await engine(store).decide(
        CONN, purchase(ip="200.1.2.3", ua=UA), T, dt.timedelta(days=30), deterministic_only=True
    )
    assert decision.stage is Stage.NONE and "waiting" in decision.facts["reason"]
    assert store.asked == ["exact"]
    carried = click(7)
    store = Store(exact=[("carrier", carried)])
    decision = await engine(store).decide(
        CONN, purchase(sck=carried.session_id), T, dt.timedelta(days=30), deterministic_only=True
    )
    assert (decision.stage, decision.click) == (Stage.DETERMINISTIC, carried)


async def test_no_ip_nor_user_agent_means_no_stage_three_query() -> None:
    store = Store(candidates=[click(1)])
    decision = await decide(store, purchase())
    assert decision.stage is Stage.NONE
    assert store.asked == ["exact"]


async def test_stage_three_without_candidates_is_unmatched() -> None:
    store = Store()
    decision = await decide(store, purchase(ip="200.1.2.3", ua=UA))
    assert decision.stage is Stage.NONE
    assert "no session shares" in decision.facts["reason"]
    assert store.asked == ["exact", "probabilistic"]


async def test_a_lone_candidate_is_scored_with_the_tenant_profile_read_once() -> None:
    sample = [
        {"browser_family": "Chrome", "os_family": "Android", "device_type": "mobile",
         "campaign": "", "last_seen_at": T - dt.timedelta(minutes=i)}
        for i in range(50)
    ]  # fmt: skip
    store = Store(candidates=[click(1, minutes=5)], sample=sample)
    shared = engine(store)
    for _ in range(2):
        decision = await shared.decide(
            CONN, purchase(ip="200.1.2.3", ua=UA), T, dt.timedelta(days=30)
        )
        assert decision.threshold == ModelParams().threshold
    assert store.asked.count("sample") == 1
    assert store.asked.count("probabilistic") == 2


async def test_the_profile_is_read_again_after_its_ttl() -> None:
    store = Store()
    cache = ProfileCache(ttl_s=0.0)
    await cache.get(store, CONN, "t")
    await cache.get(store, CONN, "t")
    assert store.asked == ["sample", "sample"]


def test_a_profile_from_a_short_sample_assumes_an_hour() -> None:
    rows = [
        {"browser_family": "Chrome", "os_family": "Android", "device_type": "mobile",
         "campaign": "black" if i % 2 else "", "last_seen_at": T - dt.timedelta(minutes=i)}
        for i in range(10)
    ]  # fmt: skip
    profile = build_profile(rows)
    assert profile.sample_size == 10
    assert profile.session_rate == pytest.approx(10 / 3600)
    assert profile.family_share == {("Chrome", "Android", "mobile"): 1.0}
    assert profile.campaign_share == {"black": 0.5}
    assert build_profile([]).sample_size == 0
