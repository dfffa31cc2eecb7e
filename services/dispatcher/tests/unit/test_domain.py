"""Pure delivery rules: Meta's validation, the classification of Meta's answers, the breaker's
transitions, the retry ladder, and which destination a funnel's events go to."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.json_format import ParseDict

from trackai.matcher.v1 import events_pb2 as matcher_pb
from trackai_dispatcher.adapters.meta import event_payload, wire_event
from trackai_dispatcher.adapters.wire import server_event
from trackai_dispatcher.domain.breaker import Breaker, BreakerPolicy, BreakerState, Gate, Transition
from trackai_dispatcher.domain.classification import MetaAnswer, Verdict, classify
from trackai_dispatcher.domain.model import RetryLadder, is_expired
from trackai_dispatcher.domain.validation import Invalid, validate
from trackai_sandbox.testing import sample_purchase, sha256_hex

NOW = int(time.time())


def event(**overrides: Any) -> matcher_pb.ServerEvent:
    raw = sample_purchase(NOW, event_id=sha256_hex("e"), **overrides)
    if isinstance(raw.get("custom_data"), dict) and isinstance(
        raw["custom_data"].get("value"), float
    ):
        raw["custom_data"]["value"] = f"{raw['custom_data']['value']:.2f}"
    return ParseDict(raw, matcher_pb.ServerEvent())


def valid(event: matcher_pb.ServerEvent, now: float) -> Invalid | None:
    """The rules on the event as the broker adapter hands it to the service layer."""
    return validate(server_event(event), now)


def test_a_complete_purchase_is_valid() -> None:
    assert valid(event(), NOW) is None


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"event_name": None}, "required"),
        ({"action_source": None}, "required"),
        ({"action_source": "web"}, "action_source"),
        ({"event_source_url": None}, "required"),
        ({"user_data": {"em": [sha256_hex("a")]}}, "required"),  # website needs the user agent
        ({"user_data": {"em": ["Buyer@Example.com"], "client_user_agent": "UA"}}, "hashed_key"),
        ({"user_data": {"ph": ["ABC" * 21 + "D"], "client_user_agent": "UA"}}, "hashed_key"),
        ({"user_data": {"db": ["19970216"], "client_user_agent": "UA"}}, "hashed_key"),
        ({"user_data": {"ge": ["f"], "client_user_agent": "UA"}}, "hashed_key"),
        (
            {"user_data": {"client_user_agent": "UA", "db": [sha256_hex("19970216")]}},
            "customer_information",
        ),
        (
            {"user_data": {"client_user_agent": "UA", "ct": [sha256_hex("x")]}},
            "customer_information",
        ),
        ({"user_data": {"client_user_agent": "UA", "fbc": "fb.1.123.abc"}}, "fbc"),
        ({"user_data": {"client_user_agent": "UA", "fbp": "fb.1.1700000000000.x"}}, "fbp"),
        (
            {"user_data": {"client_user_agent": "UA", "client_ip_address": "999.1.1.1"}},
            "client_ip_address",
        ),
        ({"custom_data": {"currency": "BRL"}}, "purchase_value"),
        ({"custom_data": {"value": "10.00"}}, "purchase_value"),
        ({"custom_data": {"value": "1e3", "currency": "BRL"}}, "value"),
        ({"custom_data": {"value": "10.00", "currency": "REAL"}}, "currency"),
        ({"event_time": NOW + 3600}, "event_time"),
        ({"event_time": NOW * 1000}, "event_time"),
    ],
)
def test_meta_rules_name_the_broken_one(overrides: dict[str, Any], rule: str) -> None:
    problem = valid(event(**overrides), NOW)
    assert problem is not None and problem.rule == rule, problem


def test_birth_date_and_gender_reach_the_payload_hashed() -> None:
    user = {
        "em": [sha256_hex("a@b.com")],
        "db": [sha256_hex("19970216")],
        "ge": [sha256_hex("f")],
        "client_user_agent": "UA",
    }
    built = event(user_data=user)
    assert valid(built, NOW) is None
    sent = wire_event(event_payload(built))["user_data"]
    assert sent["db"] == [sha256_hex("19970216")] and sent["ge"] == [sha256_hex("f")]


def test_age_is_expiry_not_invalidity() -> None:
    old = NOW - 8 * 86400
    assert valid(event(event_time=old), NOW) is None
    assert is_expired(old, NOW)
    assert not is_expired(NOW - 7 * 86400 + 120, NOW)
    assert is_expired(NOW - 7 * 86400 + 30, NOW), "kept off the limit by a margin"


def test_lowercase_currency_and_non_purchase_without_value_are_fine() -> None:
    assert valid(event(custom_data={"value": "5.00", "currency": "brl"}), NOW) is None
    assert valid(event(event_name="Lead", custom_data={}), NOW) is None


def test_the_wire_form_has_meta_types() -> None:
    payload = wire_event(event_payload(event(custom_data={"value": "19.90", "currency": "BRL"})))
    assert payload["event_time"] == NOW - 60 and isinstance(payload["event_time"], int)
    assert payload["custom_data"]["value"] == 19.9
    assert repr(payload["custom_data"]["value"]) == "19.9"


def answer(status: int | None, error: dict[str, Any] | None = None, **body: Any) -> MetaAnswer:
    return MetaAnswer(
        http_status=status,
        latency_ms=1.0,
        body={"error": error} if error is not None else (body or None),
    )


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        (answer(200, events_received=3, fbtrace_id="A"), Verdict.SENT),
        (answer(None), Verdict.TIMEOUT),
        (answer(503), Verdict.RETRYABLE),  # an HTML page from the edge
        (answer(500, {"code": 1}), Verdict.RETRYABLE),
        (answer(500, {"code": 2, "is_transient": True}), Verdict.RETRYABLE),
        (answer(400, {"code": 4}), Verdict.RETRYABLE),
        (answer(400, {"code": 17}), Verdict.RETRYABLE),
        (answer(400, {"code": 341}), Verdict.RETRYABLE),
        (answer(400, {"code": 613}), Verdict.RETRYABLE),
        (answer(400, {"code": 80004}), Verdict.RETRYABLE),
        (answer(400, {"code": 80014}), Verdict.RETRYABLE),
        (answer(400, {"code": 999, "is_transient": True}), Verdict.RETRYABLE),
        (answer(400, {"code": 100, "error_subcode": 2804019}), Verdict.PAYLOAD),
        (answer(400, {"code": 100, "error_subcode": 33}), Verdict.DESTINATION),
        (answer(401, {"code": 190, "error_subcode": 463}), Verdict.TOKEN),
        (answer(403, {"code": 10}), Verdict.DESTINATION),
        (answer(403, {"code": 200}), Verdict.DESTINATION),
        (answer(403, {"code": 299}), Verdict.DESTINATION),
        (answer(400, {"code": 3}), Verdict.DESTINATION),
        (answer(400, {"code": 80015}), Verdict.DESTINATION),
        (answer(200, messages=[]), Verdict.RETRYABLE),  # no events_received: not proof of delivery
    ],
)
def test_classification_by_code(reply: MetaAnswer, verdict: Verdict) -> None:
    assert classify(reply) is verdict


START = datetime(2026, 11, 29, tzinfo=UTC)
POLICY = BreakerPolicy(
    threshold=10, cooldown=timedelta(seconds=30), probe_lease=timedelta(seconds=6)
)


def test_breaker_opens_on_the_tenth_consecutive_failure() -> None:
    breaker = Breaker()
    for n in range(9):
        breaker, transition = POLICY.record(breaker, Verdict.RETRYABLE, START)
        assert transition is None and breaker.consecutive_failures == n + 1
    breaker, transition = POLICY.record(breaker, Verdict.TIMEOUT, START)
    assert transition is Transition.OPENED and breaker.state is BreakerState.OPEN
    assert breaker.probe_after == START + timedelta(seconds=30)
    assert POLICY.admit(breaker, START + timedelta(seconds=29))[0] is Gate.PARK


def test_a_success_or_a_refused_payload_resets_the_count() -> None:
    breaker, _ = POLICY.record(Breaker(), Verdict.RETRYABLE, START)
    breaker, _ = POLICY.record(breaker, Verdict.PAYLOAD, START)
    assert breaker == Breaker()


def test_token_error_opens_at_once() -> None:
    breaker, transition = POLICY.record(Breaker(), Verdict.TOKEN, START, code=190, subcode=463)
    assert transition is Transition.OPENED and breaker.last_code == 190


def test_half_open_probe_closes_or_reopens() -> None:
    opened, _ = POLICY.record(Breaker(), Verdict.TOKEN, START)
    later = START + timedelta(seconds=31)
    gate, probing = POLICY.admit(opened, later)
    assert gate is Gate.PROBE and probing.state is BreakerState.HALF_OPEN
    assert POLICY.admit(probing, later + timedelta(seconds=1))[0] is Gate.PARK, "one prober"
    assert POLICY.admit(probing, later + timedelta(seconds=7))[0] is Gate.PROBE, "prober died"
    closed, transition = POLICY.record(probing, Verdict.SENT, later)
    assert transition is Transition.CLOSED and closed == Breaker()
    reopened, transition = POLICY.record(probing, Verdict.RETRYABLE, later)
    assert transition is Transition.REOPENED
    assert reopened.probe_after == later + timedelta(seconds=30)


def test_retry_ladder_and_parking_delays() -> None:
    ladder = RetryLadder((1000, 2000, 4000, 8000, 16000))
    assert [ladder.delay_for(step) for step in range(6)] == [1000, 2000, 4000, 8000, 16000, None]
    assert ladder.park_delay(30_000) == 16000
    assert ladder.park_delay(5000) == 4000
    assert ladder.park_delay(10) == 1000


def test_user_data_absent_differs_from_user_data_empty() -> None:
    """The broker adapter keeps protobuf's presence: no user_data at all is a missing field,
    an empty one is present but matches nobody."""
    absent = event(action_source="system_generated")
    absent.ClearField("user_data")
    problem = valid(absent, NOW)
    assert problem is not None and str(problem) == "required: user_data is required"
    empty = event(action_source="system_generated")
    empty.user_data.Clear()
    empty.user_data.SetInParent()
    problem = valid(empty, NOW)
    assert problem is not None and problem.rule == "customer_information", problem
