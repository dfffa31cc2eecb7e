"""Pure rules of the matcher: the probabilistic model, EMQ, status mapping, routing, UA traits."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from trackai_matcher.domain.emq import estimate_emq
from trackai_matcher.domain.model import Click, Purchase, Stage, Tracking
from trackai_matcher.domain.policy import PolicyError, StatusPolicy
from trackai_matcher.domain.scoring import (
    ModelParams,
    ProbabilisticModel,
    PurchaseTraits,
    TenantProfile,
    ValueCounts,
)
from trackai_matcher.domain.tenants import Destination, FunnelSetup, TenantSetup
from trackai_matcher.domain.useragent import parse_user_agent
from trackai_matcher.service_layer.events import build_user_data

T = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
UA = (
    "Mozilla/5.0 (Linux; Android 14; SM-A546E) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36"
)
PROFILE = TenantProfile(
    session_rate=1000 / 3600 / 72,
    sample_size=1000,
    family_share={("Chrome", "Android", "mobile"): 0.6},
    campaign_share={"black": 0.2},
)


def click(ip: str | None, network: str | None, ua: str | None, minutes: int, n: int = 1) -> Click:
    return Click(
        id=n,
        session_id=f"s{n}",
        first_seen_at=T - dt.timedelta(minutes=minutes + 5),
        last_seen_at=T - dt.timedelta(minutes=minutes),
        fbclid=None,
        fbc=None,
        fbp=None,
        client_ip=ip,
        ip_network=network,
        user_agent=ua,
        browser_family="Chrome",
        os_family="Android",
        device_type="mobile",
        landing_url=None,
        campaign="black",
        funnel_id=None,
    )


def traits() -> PurchaseTraits:
    return PurchaseTraits.of("200.1.2.3", "200.1.2.0/24", UA, "black", T)


def test_a_common_ip_weighs_less_than_a_rare_one() -> None:
    model = ProbabilisticModel(ModelParams())
    c = click("200.1.2.3", "200.1.2.0/24", UA, 20)
    rare = model.score(traits(), c, ValueCounts(1, 2, 30), PROFILE, 1000)
    shared = model.score(traits(), c, ValueCounts(300, 400, 30), PROFILE, 1000)
    weight = {e.feature: e.weight for e in rare.evidence}
    assert weight["ip"] == pytest.approx(9.1, abs=0.1)  # log2(0.55 / (1/1000))
    assert {e.feature: e.weight for e in shared.evidence}["ip"] < weight["ip"] - 8


def test_decision_accepts_a_clear_winner_and_refuses_ambiguity() -> None:
    model = ProbabilisticModel(ModelParams())
    counts = ValueCounts(1, 1, 5)
    alone = model.score(traits(), click("200.1.2.3", "200.1.2.0/24", UA, 20), counts, PROFILE, 1000)
    decision = model.decide(traits(), [alone], 1000)
    assert decision.stage is Stage.PROBABILISTIC and decision.score is not None
    assert decision.score >= 0.97
    twins = [
        model.score(
            traits(),
            click("200.1.2.3", "200.1.2.0/24", UA, 20, n),
            ValueCounts(2, 2, 5),
            PROFILE,
            1000,
        )
        for n in (1, 2)
    ]
    ambiguous = model.decide(traits(), twins, 1000)
    assert ambiguous.stage is Stage.NONE and ambiguous.runner_up is not None
    assert ambiguous.runner_up.score < 0.6


def test_missing_values_weigh_nothing() -> None:
    model = ProbabilisticModel(ModelParams())
    c = click(None, None, None, 20)
    scored = model.score(traits(), c, ValueCounts(0, 0, 0), PROFILE, 1000)
    outcomes = {e.feature: (e.outcome, e.weight) for e in scored.evidence}
    assert outcomes["ip"] == ("missing", 0.0) and outcomes["user_agent"] == ("missing", 0.0)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"em", "ph", "fbc", "fbp", "external_id", "client_ip_address", "client_user_agent"}, 8.96),
        ({"em", "ph", "fbc", "fbp", "client_ip_address", "client_user_agent"}, 8.78),
        ({"em", "external_id"}, 5.75),
        ({"em"}, 5.0),
        # Birth date and gender are weak keys: they add a little to what is already there.
        ({"em", "db", "ge"}, 5.2),
        ({"em", "ph", "fn", "ln", "ct", "st", "zp", "country", "db", "ge"}, 7.56),
        ({"client_ip_address", "client_user_agent", "fbp"}, 3.2),
        ({"client_ip_address"}, 0.0),
    ],
)
def test_emq_estimate(keys: set[str], expected: float) -> None:
    assert estimate_emq(keys).score == pytest.approx(expected, abs=0.05)


def test_emq_lists_missing_keys_strongest_first() -> None:
    estimate = estimate_emq({"ph"})
    assert estimate.low and estimate.missing[:2] == ("em", "fbc")


@pytest.mark.parametrize(
    ("status", "method", "pending", "expected"),
    [
        ("approved", "credit_card", None, "Purchase"),
        ("completed", "pix", None, "Purchase"),
        ("pending_payment", "pix", None, None),
        ("pending_payment", "boleto", "AddPaymentInfo", "AddPaymentInfo"),
        ("pending_payment", "credit_card", "InitiateCheckout", None),
        ("refunded", "pix", "InitiateCheckout", None),
        ("chargeback", "credit_card", None, None),
    ],
)
def test_status_mapping(
    status: str, method: str, pending: str | None, expected: str | None
) -> None:
    assert StatusPolicy(pending_event=pending).event_for(status, method)[0] == expected


def test_status_mapping_refuses_other_events() -> None:
    with pytest.raises(PolicyError, match="InitiateCheckout"):
        StatusPolicy(pending_event="Purchase")


def test_routing_and_lookback() -> None:
    setup = TenantSetup(
        "t",
        Destination("111", "DEFAULT"),
        {
            "f1": FunnelSetup("f1", 45, Destination("222"), "F1TEST"),
            "f2": FunnelSetup("f2", 10, None, ""),
        },
    )
    assert setup.route("f1").destination == Destination("222", "F1TEST")
    assert setup.route("f2").destination == Destination("111", "DEFAULT")
    assert setup.route(None).funnel_id is None
    assert setup.lookback("f2", dt.timedelta(days=30)) == dt.timedelta(days=10)
    assert setup.lookback(None, dt.timedelta(days=30)) == dt.timedelta(days=45)
    assert TenantSetup("t", None).route("x").reason == "no Meta destination configured"


@pytest.mark.parametrize(
    ("ua", "traits_"),
    [
        (UA, ("Chrome", "Android", "mobile")),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            ("Safari", "iOS", "mobile"),
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148 Instagram 330.0",
            ("Instagram", "iOS", "mobile"),
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0 Safari/537.36 Edg/124.0",
            ("Edge", "Windows", "desktop"),
        ),
        ("", (None, None, None)),
    ],
)
def test_user_agent_traits(ua: str, traits_: tuple[str | None, ...]) -> None:
    assert parse_user_agent(ua).key == traits_


def _purchase(**changes: Any) -> Purchase:
    fields: dict[str, Any] = {
        "tenant_id": "t",
        "gateway": "hotmart",
        "order_id": "o",
        "conversion_id": None,
        "status": "approved",
        "payment_method": "",
        "event_time": T,
        "amount": "1",
        "currency": "BRL",
        "product_id": "",
        "funnel_id": None,
        "tracking": Tracking(),
        "client_ip": None,
        "user_agent": "",
        "hashed": {},
    }
    return Purchase(**{**fields, **changes})


def test_session_carriers_skip_short_tags_and_keep_priority() -> None:
    purchase = _purchase(
        tracking=Tracking(
            sck="sess-0000001", utm={"utm_content": "ad1"}, extra={"xcod": "sess-2222222"}
        )
    )
    assert purchase.session_carriers() == [("sck", "sess-0000001"), ("xcod", "sess-2222222")]


def test_script_sessions_are_the_carried_values_shaped_like_the_scripts_ids() -> None:
    purchase = _purchase(
        tracking=Tracking(
            sck="taAbCdEfGhIj0123456789",
            src="sess-0000001",
            utm={"utm_content": "taAbCdEfGhIj012345678"},  # one character short
            extra={"xcod": "tb0123456789abcdefghij"},
        )
    )
    assert purchase.script_sessions() == ["taAbCdEfGhIj0123456789"]


def test_candidate_cutoff_allows_for_minute_precision_but_never_past_receipt() -> None:
    import dataclasses
    import datetime as dt

    from trackai_matcher.domain.model import PURCHASE_TIME_TOLERANCE, Purchase

    fields = {f.name: None for f in dataclasses.fields(Purchase)}
    at = dt.datetime(2026, 11, 29, 10, 0, tzinfo=dt.UTC)  # Kiwify said "10:00"
    # Received 40 s later: sessions that began up to then may have produced it, not after.
    received = at + dt.timedelta(seconds=40)
    purchase = Purchase(**{**fields, "received_at": received, "hashed": {}})  # type: ignore[arg-type]
    assert purchase.candidates_as_of(at) == received
    # Unknown receipt time: the tolerance alone.
    unknown = Purchase(**{**fields, "hashed": {}})  # type: ignore[arg-type]
    assert unknown.candidates_as_of(at) == at + PURCHASE_TIME_TOLERANCE
    # A re-evaluation days later (pix approved) keeps the original purchase time plus tolerance.
    late = Purchase(**{**fields, "received_at": at + dt.timedelta(days=3), "hashed": {}})  # type: ignore[arg-type]
    assert late.candidates_as_of(at) == at + PURCHASE_TIME_TOLERANCE
    # A receipt stamped before the gateway's time (clock skew) never moves the cut-off earlier.
    early = Purchase(**{**fields, "received_at": at - dt.timedelta(seconds=30), "hashed": {}})  # type: ignore[arg-type]
    assert early.candidates_as_of(at) == at


@pytest.mark.parametrize(
    ("purchase_ip", "click_ip", "sent"),
    [
        ("10.0.3.17", None, ""),  # a load balancer's address stored before ingestion filtered it
        ("127.0.0.1", "192.168.0.4", ""),
        ("10.0.3.17", "189.10.20.30", "189.10.20.30"),
        ("200.1.2.3", "189.10.20.30", "200.1.2.3"),
    ],
)
def test_only_public_addresses_reach_meta(
    purchase_ip: str | None, click_ip: str | None, sent: str
) -> None:
    purchase = _purchase(client_ip=purchase_ip)
    user_data = build_user_data(purchase, click(click_ip, None, UA, 5), [])
    assert user_data.client_ip_address == sent
