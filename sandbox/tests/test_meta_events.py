"""POST /{v}/{pixel}/events: what Meta accepts, what it rejects, and with which code/subcode."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from trackai_sandbox.testing import (
    DEMO_PIXEL_ID,
    DEMO_TOKEN,
    MetaSandboxClient,
    sample_purchase,
    sha256_hex,
)

PIXEL, TOKEN, sha = DEMO_PIXEL_ID, DEMO_TOKEN, sha256_hex
NOW = 1_790_000_000  # the clock the ``meta`` fixture freezes


def purchase(**overrides: Any) -> dict[str, Any]:
    return sample_purchase(NOW, **overrides)


TRACE_ID = re.compile(r"A[A-Za-z0-9_-]{22}")
ENVELOPE_KEYS = {
    "message",
    "type",
    "code",
    "error_subcode",
    "is_transient",
    "error_user_title",
    "error_user_msg",
    "fbtrace_id",
}


def assert_rejected(answer: httpx.Response, subcode: int) -> dict[str, Any]:
    assert answer.status_code == 400, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert set(error) == ENVELOPE_KEYS
    assert error["code"] == 100
    assert error["error_subcode"] == subcode
    assert error["type"] == "OAuthException"
    assert error["message"] == "Invalid parameter"
    assert error["is_transient"] is False
    assert TRACE_ID.fullmatch(error["fbtrace_id"])
    return error


def test_valid_batch_is_accepted_with_meta_success_shape(meta: MetaSandboxClient) -> None:
    events = [purchase(event_id=f"order-{n}") for n in range(3)]
    answer = meta.post_events(events, test_event_code="TEST123", partner_agent="trackai-0.1")

    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"events_received", "messages", "fbtrace_id"}
    assert body["events_received"] == 3
    assert body["messages"] == []
    assert TRACE_ID.fullmatch(body["fbtrace_id"])
    assert answer.headers["x-fb-trace-id"] == body["fbtrace_id"]
    stored = meta.events(pixel_id=PIXEL)
    assert [row["event"]["event_id"] for row in stored] == ["order-0", "order-1", "order-2"]
    assert {row["test_event_code"] for row in stored} == {"TEST123"}
    assert {row["partner_agent"] for row in stored} == {"trackai-0.1"}


def test_form_encoded_data_string_is_accepted(meta: MetaSandboxClient) -> None:
    # The official SDKs post form fields, with ``data`` as a JSON string and the token in the body.
    answer = meta.http.post(
        f"/v25.0/{PIXEL}/events",
        data={"data": json.dumps([purchase()]), "access_token": TOKEN},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["events_received"] == 1


@pytest.mark.parametrize("where", ["json_body", "bearer_header"])
def test_token_is_read_from_body_or_authorization_header(
    meta: MetaSandboxClient, where: str
) -> None:
    if where == "json_body":
        answer = meta.http.post(
            f"/v25.0/{PIXEL}/events", json={"data": [purchase()], "access_token": TOKEN}
        )
    else:
        answer = meta.http.post(
            f"/v25.0/{PIXEL}/events",
            json={"data": [purchase()]},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert answer.status_code == 200, answer.text


def test_batch_of_1000_is_accepted_and_1001_rejected(meta: MetaSandboxClient) -> None:
    batch = [purchase(event_id=f"order-{n}") for n in range(1001)]

    rejected = meta.post_events(batch)
    assert rejected.status_code == 400
    assert rejected.json()["error"]["code"] == 100
    assert meta.events() == []

    accepted = meta.post_events(batch[:1000])
    assert accepted.status_code == 200
    assert accepted.json()["events_received"] == 1000
    assert len(meta.events()) == 1000


def test_one_bad_event_rejects_the_whole_batch(meta: MetaSandboxClient) -> None:
    batch = [purchase(event_id=f"order-{n}") for n in range(5)]
    batch[3]["user_data"]["em"] = ["buyer@example.com"]

    error = assert_rejected(meta.post_events(batch), 2804001)

    assert "$['data'][3]['user_data']['em']" in error["error_user_msg"]
    assert meta.events() == []


def test_event_older_than_seven_days_fails_the_request(meta: MetaSandboxClient) -> None:
    batch = [purchase(), purchase(event_id="old", event_time=NOW - 7 * 86400 - 1)]

    error = assert_rejected(meta.post_events(batch), 2804003)

    assert error["error_user_title"] == "Event Timestamp Too Old"
    assert "within 7 days" in error["error_user_msg"]
    assert meta.events() == []


def _drop_user_key(key: str) -> Callable[[dict[str, Any]], None]:
    def mutate(event: dict[str, Any]) -> None:
        event["user_data"].pop(key)

    return mutate


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(event: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        target = event
        for parent in parents:
            target = target[parent]
        if value is None:
            target.pop(leaf)
        else:
            target[leaf] = value

    return mutate


def _only_user_keys(**keys: str) -> Callable[[dict[str, Any]], None]:
    def mutate(event: dict[str, Any]) -> None:
        event["action_source"] = "system_generated"
        event["user_data"] = keys

    return mutate


REJECTIONS = [
    ("missing event_name", _set("event_name", None), 2804019),
    ("missing event_time", _set("event_time", None), 2804019),
    ("event_time as string", _set("event_time", str(NOW)), 2804001),
    ("event_time in milliseconds", _set("event_time", NOW * 1000), 2804004),
    ("event_time an hour ahead", _set("event_time", NOW + 3600), 2804004),
    ("missing action_source", _set("action_source", None), 2804019),
    ("unknown action_source", _set("action_source", "web"), 2804001),
    ("website without event_source_url", _set("event_source_url", None), 2804019),
    ("website without client_user_agent", _drop_user_key("client_user_agent"), 2804019),
    ("missing user_data", _set("user_data", None), 2804019),
    ("unhashed e-mail", _set("user_data.em", "buyer@example.com"), 2804001),
    ("uppercase hash", _set("user_data.em", sha("x@example.com").upper()), 2804001),
    ("md5 instead of sha256", _set("user_data.ph", ["0" * 32]), 2804001),
    ("one unhashed item in an array", _set("user_data.em", [sha("a@b.co"), "a@b.co"]), 2804001),
    ("unhashed first name", _set("user_data.fn", "maria"), 2804001),
    ("fbc with seconds", _set("user_data.fbc", "fb.1.1789999000.IwAR2xYz"), 2804001),
    ("fbc without fbclid", _set("user_data.fbc", "fb.1.1789999000000"), 2804001),
    ("fbp not numeric", _set("user_data.fbp", "fb.1.1789999000000.abc"), 2804001),
    ("bad client ip", _set("user_data.client_ip_address", "999.1.1.1"), 2804001),
    ("empty user_data", _only_user_keys(), 2804050),
    (
        "location only",
        _only_user_keys(ct=sha("sao paulo"), country=sha("br"), zp=sha("01000")),
        2804050,
    ),
    ("user agent only", _only_user_keys(client_user_agent="Mozilla/5.0"), 2804050),
    (
        "birth date and user agent",
        _only_user_keys(db=sha("19900101"), client_user_agent="UA"),
        2804050,
    ),
    ("first name and gender", _only_user_keys(fn=sha("maria"), ge=sha("f")), 2804050),
    ("last name and gender", _only_user_keys(ln=sha("silva"), ge=sha("f")), 2804050),
    ("Purchase without value", _set("custom_data.value", None), 2804009),
    ("Purchase without currency", _set("custom_data.currency", None), 2804009),
    ("Purchase without custom_data", _set("custom_data", None), 2804009),
    ("value as string", _set("custom_data.value", "129.90"), 2804001),
    ("unknown currency", _set("custom_data.currency", "XYZ"), 2804001),
    ("LDU misspelled", _set("data_processing_options", ["ldu"]), 2804001),
]


@pytest.mark.parametrize(
    ("mutate", "subcode"),
    [pytest.param(m, s, id=name) for name, m, s in REJECTIONS],
)
def test_meta_rejects_invalid_event(
    meta: MetaSandboxClient, mutate: Callable[[dict[str, Any]], None], subcode: int
) -> None:
    event = purchase()
    mutate(event)

    error = assert_rejected(meta.post_events([purchase(event_id="good"), event]), subcode)

    assert error["error_user_msg"]
    assert meta.events() == []


def test_missing_parameter_is_named_as_meta_names_it(meta: MetaSandboxClient) -> None:
    event = purchase()
    del event["event_time"]

    error = assert_rejected(meta.post_events([event]), 2804019)

    assert error["error_user_title"] == "Server-side API parameter error"
    assert error["error_user_msg"] == "The parameter $['data'][0]['event_time'] is required."


ACCEPTED = [
    ("fbc with appendix", _set("user_data.fbc", "fb.1.1789999000000.IwAR2xYz.Bz")),
    ("case-sensitive fbclid", _set("user_data.fbc", "fb.2.1789999000000.AbCdEf-_9")),
    ("hash as plain string", _set("user_data.em", sha("a@b.co"))),
    ("external_id unhashed", _only_user_keys(external_id="customer-42")),
    ("fbp alone", _only_user_keys(fbp="fb.1.1789999000000.987654321")),
    ("ip and user agent", _only_user_keys(client_ip_address="2001:db8::1", client_user_agent="UA")),
    ("lowercase currency", _set("custom_data.currency", "brl")),
    ("integer value", _set("custom_data.value", 100)),
    ("exactly seven days old", _set("event_time", NOW - 7 * 86400)),
    ("a few seconds ahead", _set("event_time", NOW + 30)),
    ("LDU", _set("data_processing_options", ["LDU"])),
]


@pytest.mark.parametrize("mutate", [pytest.param(m, id=name) for name, m in ACCEPTED])
def test_meta_accepts_valid_variant(
    meta: MetaSandboxClient, mutate: Callable[[dict[str, Any]], None]
) -> None:
    event = purchase()
    mutate(event)

    answer = meta.post_events([event])

    assert answer.status_code == 200, answer.text
    assert answer.json()["events_received"] == 1


def test_non_purchase_event_needs_no_value(meta: MetaSandboxClient) -> None:
    lead = purchase(event_name="Lead", custom_data=None)
    assert meta.post_events([lead]).status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "(#100) The parameter data is required"),
        ({"data": []}, "(#100) The parameter data is required"),
        ({"data": "not json"}, "(#100) param data must be an array."),
        ({"data": {"event_name": "Lead"}}, "(#100) param data must be an array."),
        ({"data": ["Lead"]}, "(#100) param data[0] must be an object."),
    ],
)
def test_malformed_data_parameter(
    meta: MetaSandboxClient, body: dict[str, Any], message: str
) -> None:
    answer = meta.http.post(f"/v25.0/{PIXEL}/events", params={"access_token": TOKEN}, json=body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], error["message"]) == (100, message)
    assert "error_subcode" not in error


def test_recordings_show_the_request_and_count_each_delivery(meta: MetaSandboxClient) -> None:
    meta.post_events([purchase(event_id="dup")])
    meta.post_events([purchase(event_id="dup")])
    meta.post_events([purchase(event_id="dup", event_time=0)])  # rejected: not counted

    requests = meta.http.get("/_sandbox/requests", params={"pixel_id": PIXEL}).json()["data"]
    assert [r["status"] for r in requests] == [200, 200, 400]
    assert requests[0]["body"]["data"][0]["event_id"] == "dup"
    assert requests[2]["response"]["error"]["error_subcode"] == 2804003
    counts = meta.http.get("/_sandbox/event-counts", params={"event_id": "dup"}).json()["data"]
    assert counts == [{"pixel_id": PIXEL, "event_name": "Purchase", "event_id": "dup", "count": 2}]
