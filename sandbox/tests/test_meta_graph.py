"""Tokens, versions, debug_token, pixel lookup and injected faults on the Meta fake."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from trackai_sandbox.testing import (
    DEMO_APP_TOKEN,
    DEMO_PIXEL_ID,
    DEMO_TOKEN,
    MetaSandboxClient,
    sample_purchase,
)

NOW = 1_790_000_000  # the clock the ``meta`` fixture freezes
PIXEL, TOKEN = DEMO_PIXEL_ID, DEMO_TOKEN


def purchase(**overrides: Any) -> dict[str, Any]:
    return sample_purchase(NOW, **overrides)


def error_of(answer: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = answer.json()["error"]
    assert error["fbtrace_id"] == answer.headers["x-fb-trace-id"]
    return error


# --- tokens, access, versions --------------------------------------------------------------
def test_missing_token_is_code_104(meta: MetaSandboxClient) -> None:
    answer = meta.post_events([purchase()], token=None)
    assert answer.status_code == 400
    assert error_of(answer)["code"] == 104


def test_unknown_token_is_190_without_subcode(meta: MetaSandboxClient) -> None:
    answer = meta.post_events([purchase()], token="EAAG-not-a-token")
    assert answer.status_code == 401
    error = error_of(answer)
    assert (error["code"], error["type"]) == (190, "OAuthException")
    assert "error_subcode" not in error
    assert meta.events() == []


@pytest.mark.parametrize(
    ("fields", "subcode"),
    [({"state": "expired"}, 463), ({"expires_at": NOW - 1}, 463), ({"state": "invalidated"}, 460)],
)
def test_dead_token_is_190_with_subcode(
    meta: MetaSandboxClient, fields: dict[str, Any], subcode: int
) -> None:
    meta.register_token("tenant-token", pixel_ids=[PIXEL], **fields)
    error = error_of(meta.post_events([purchase()], token="tenant-token"))
    assert (error["code"], error["error_subcode"]) == (190, subcode)
    assert error["message"].startswith("Error validating access token")


def test_pixel_the_token_cannot_reach_is_100_33(meta: MetaSandboxClient) -> None:
    meta.register_pixel("555000111", token="other-tenant-token")
    for pixel in ("555000111", "999999999"):
        answer = meta.post_events([purchase()], pixel_id=pixel)
        assert answer.status_code == 400
        error = error_of(answer)
        assert (error["code"], error["error_subcode"]) == (100, 33)
        assert error["type"] == "GraphMethodException"
        assert f"Object with ID '{pixel}' does not exist" in error["message"]


def test_each_tenant_token_reaches_its_own_pixel(meta: MetaSandboxClient) -> None:
    meta.register_pixel("555000111", token="tenant-a")
    assert meta.post_events([purchase()], pixel_id="555000111", token="tenant-a").status_code == 200
    assert meta.post_events([purchase()], pixel_id=PIXEL, token="tenant-a").status_code == 400
    assert [r["event"]["event_id"] for r in meta.events(pixel_id="555000111")] == ["order-1"]


@pytest.mark.parametrize("version", ["v99.0", "25.0", "v25", "latest"])
def test_unknown_version_is_unknown_path_2500(meta: MetaSandboxClient, version: str) -> None:
    answer = meta.post_events([purchase()], version=version)
    assert answer.status_code == 400
    error = error_of(answer)
    assert error["code"] == 2500
    assert error["message"].startswith("Unknown path components: ")


def test_expired_version_is_served_as_the_oldest_live_one(meta: MetaSandboxClient) -> None:
    answer = meta.post_events([purchase()], version="v12.0")
    assert answer.status_code == 200
    assert answer.headers["facebook-api-version"] == "v22.0"


# --- debug_token -----------------------------------------------------------------------------
def debug(
    meta: MetaSandboxClient, input_token: str, app_token: str = DEMO_APP_TOKEN
) -> httpx.Response:
    return meta.http.get(
        "/v25.0/debug_token", params={"input_token": input_token, "access_token": app_token}
    )


def test_debug_token_describes_a_valid_token(meta: MetaSandboxClient) -> None:
    answer = debug(meta, TOKEN)
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert data["is_valid"] is True
    assert data["app_id"] == "100000000000001"
    assert data["type"] == "SYSTEM_USER"
    assert data["application"] == "Track AI Sandbox"
    assert data["expires_at"] == 0
    assert "ads_management" in data["scopes"]
    assert data["user_id"]


def test_debug_token_reports_an_expired_token_as_invalid(meta: MetaSandboxClient) -> None:
    meta.register_token("old-token", type="USER", expires_at=NOW - 10, scopes=["ads_read"])
    data = debug(meta, "old-token").json()["data"]
    assert data["is_valid"] is False
    assert data["type"] == "USER"
    assert data["scopes"] == ["ads_read"]
    assert (data["error"]["code"], data["error"]["subcode"]) == (190, 463)


def test_debug_token_of_garbage_is_invalid_with_an_error(meta: MetaSandboxClient) -> None:
    data = debug(meta, "garbage").json()["data"]
    assert data["is_valid"] is False
    assert data["error"]["code"] == 190
    assert data["scopes"] == []


def test_debug_token_needs_a_good_app_token(meta: MetaSandboxClient) -> None:
    answer = debug(meta, TOKEN, app_token="100000000000001|wrong-secret")
    assert answer.status_code == 401
    assert error_of(answer)["code"] == 190


# --- pixel lookup ----------------------------------------------------------------------------
def lookup(meta: MetaSandboxClient, pixel: str = PIXEL, token: str = TOKEN) -> httpx.Response:
    return meta.http.get(
        f"/v25.0/{pixel}",
        params={"fields": "id,name,last_fired_time,is_unavailable", "access_token": token},
    )


def test_pixel_lookup_returns_the_requested_fields(meta: MetaSandboxClient) -> None:
    before = lookup(meta).json()
    assert before == {"id": PIXEL, "name": "Track AI demo pixel", "is_unavailable": False}

    meta.post_events([purchase()])
    after = lookup(meta).json()
    assert after["last_fired_time"] == "2026-09-21T14:13:20+0000"  # the frozen clock


def test_pixel_lookup_without_access_is_100_33(meta: MetaSandboxClient) -> None:
    meta.register_pixel("555000111", token="tenant-a")
    answer = lookup(meta, pixel="555000111")
    assert answer.status_code == 400
    error = error_of(answer)
    assert (error["code"], error["error_subcode"], error["type"]) == (
        100,
        33,
        "GraphMethodException",
    )
    assert error["message"].startswith("Unsupported get request.")


def test_pixel_lookup_rejects_unknown_fields(meta: MetaSandboxClient) -> None:
    answer = meta.http.get(f"/v25.0/{PIXEL}", params={"fields": "id,owner", "access_token": TOKEN})
    assert answer.status_code == 400
    assert "nonexisting field (owner)" in error_of(answer)["message"]


# --- injected faults -------------------------------------------------------------------------
def test_transient_fault_answers_code_2_once(meta: MetaSandboxClient) -> None:
    meta.add_fault("transient", count=1)

    first = meta.post_events([purchase()])
    assert first.status_code == 500
    error = error_of(first)
    assert (error["code"], error["is_transient"]) == (2, True)
    assert meta.events() == []

    assert meta.post_events([purchase()]).status_code == 200


@pytest.mark.parametrize("code", [4, 17, 341, 613, 80004])
def test_rate_limit_fault_uses_the_requested_code(meta: MetaSandboxClient, code: int) -> None:
    meta.add_fault("rate_limit", code=code)
    error = error_of(meta.post_events([purchase()]))
    assert error["code"] == code
    assert error["is_transient"] is True


def test_http_500_and_503_faults(meta: MetaSandboxClient) -> None:
    meta.add_fault("http_500")
    meta.add_fault("http_503")
    first = meta.post_events([purchase()])
    assert first.status_code == 500
    assert error_of(first)["code"] == 1
    second = meta.post_events([purchase()])
    # Meta's edge answers a 503 with an HTML page, not the Graph envelope.
    assert second.status_code == 503
    assert second.headers["content-type"].startswith("text/html")
    assert meta.post_events([purchase()]).status_code == 200


def test_token_expired_fault_is_190_463(meta: MetaSandboxClient) -> None:
    meta.add_fault("token_expired")
    answer = meta.post_events([purchase()])
    assert answer.status_code == 401
    assert (error_of(answer)["code"], error_of(answer)["error_subcode"]) == (190, 463)


def test_fault_scoped_to_a_pixel_spares_the_others(meta: MetaSandboxClient) -> None:
    meta.register_pixel("555000111", token=TOKEN)
    meta.add_fault("transient", pixel_id="555000111", count=None)
    for _ in range(3):
        assert meta.post_events([purchase()], pixel_id="555000111").status_code == 500
        assert meta.post_events([purchase()]).status_code == 200
    meta.http.delete("/_sandbox/faults").raise_for_status()
    assert meta.post_events([purchase()], pixel_id="555000111").status_code == 200


def test_fault_probability_zero_never_fires(meta: MetaSandboxClient) -> None:
    meta.add_fault("http_500", count=None, probability=0.0)
    assert all(meta.post_events([purchase()]).status_code == 200 for _ in range(5))


def test_latency_fault_and_global_latency_delay_the_answer(meta: MetaSandboxClient) -> None:
    meta.add_fault("latency_ms", latency_ms=300)
    started = time.perf_counter()
    assert meta.post_events([purchase()]).status_code == 200
    assert time.perf_counter() - started >= 0.3

    meta.set_latency(200)
    started = time.perf_counter()
    assert meta.post_events([purchase()]).status_code == 200
    assert 0.2 <= time.perf_counter() - started < 0.3 + 0.2


def test_timeout_fault_outlasts_a_1_5_s_client(meta: MetaSandboxClient, sandbox_url: str) -> None:
    meta.add_fault("timeout", hang_s=30)
    started = time.perf_counter()
    with (
        httpx.Client(base_url=sandbox_url, timeout=1.5) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        impatient.post(
            f"/v25.0/{PIXEL}/events", params={"access_token": TOKEN}, json={"data": [purchase()]}
        )
    assert 1.5 <= time.perf_counter() - started < 2.5
    assert meta.events() == []
    # The fake noticed the client leave and is free again.
    assert meta.post_events([purchase()]).status_code == 200


def test_timeout_after_accepting_lets_a_retry_be_seen_as_a_duplicate(
    meta: MetaSandboxClient, sandbox_url: str
) -> None:
    meta.add_fault("timeout", hang_s=30, accept_before=True)
    with (
        httpx.Client(base_url=sandbox_url, timeout=0.5) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        impatient.post(
            f"/v25.0/{PIXEL}/events", params={"access_token": TOKEN}, json={"data": [purchase()]}
        )
    assert meta.post_events([purchase()]).status_code == 200

    counts = meta.event_counts(event_id="order-1")
    assert [c["count"] for c in counts] == [2]


def test_reset_clears_state_but_keeps_the_demo_pixel(meta: MetaSandboxClient) -> None:
    meta.register_pixel("555000111", token="tenant-a")
    meta.add_fault("http_500", count=None)
    meta.reset()
    meta.freeze_clock(NOW)
    assert meta.post_events([purchase()]).status_code == 200
    assert meta.post_events([purchase()], pixel_id="555000111", token="tenant-a").status_code == 401
