"""Sentry events and breadcrumbs leave the process without e-mails, phones, tokens or bodies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from pydantic import SecretStr
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from trackai_kit.sentry import configure_sentry, scrub_breadcrumb, scrub_event
from trackai_kit.settings import SentrySettings

PII = (
    "joao@example.com",
    "91234-5678",
    "11912345678",
    "tok_live_abc123",
    "s3cret",
    "123.456.789-09",
)
# Built at run time: Sentry ships source lines around the failing frame, and literals would show.
EMAIL = "joao" + "@example.com"
TOKEN = "tok_live_" + "abc123"
PHONE = "119" + "12345678"


def _assert_clean(payload: Any) -> None:
    dumped = json.dumps(payload, default=str)
    for leaked in PII:
        assert leaked not in dumped, f"{leaked} leaked in {dumped}"


def test_scrub_event_removes_pii_everywhere() -> None:
    event = {
        "event_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "message": "failed for joao@example.com phone 11912345678",
        "logentry": {"message": "token=tok_live_abc123", "params": ["(11) 91234-5678"]},
        "extra": {"customer": {"email": "joao@example.com", "cpf": "123.456.789-09"}, "n": 3},
        "breadcrumbs": {
            "values": [
                {"message": "GET /hook?token=tok_live_abc123", "data": {"password": "s3cret"}}
            ]
        },
        "request": {
            "url": "https://x.test/hook?email=joao@example.com",
            "headers": {"Authorization": "Bearer tok_live_abc123", "User-Agent": "ua"},
            "cookies": {"session": "s3cret"},
            "data": {"buyer": {"email": "joao@example.com"}},
            "query_string": "token=tok_live_abc123",
        },
        "user": {"id": "u1", "email": "joao@example.com", "ip_address": "10.0.0.1"},
        "exception": {
            "values": [
                {
                    "type": "ValueError",
                    "value": "bad phone +55 11 91234-5678",
                    "stacktrace": {"frames": [{"vars": {"email": "joao@example.com"}}]},
                }
            ]
        },
    }
    out = scrub_event(event, {})
    assert out is not None
    _assert_clean(out)
    assert out["event_id"] == event["event_id"]
    assert out["user"] == {"id": "u1"}
    assert out["extra"]["n"] == 3
    assert out["request"]["headers"]["User-Agent"] == "ua"


def test_scrub_breadcrumb() -> None:
    crumb = {"category": "http", "data": {"url": "/x?email=joao@example.com", "api_key": "s3cret"}}
    out = scrub_breadcrumb(crumb, {})
    assert out is not None
    _assert_clean(out)
    assert out["category"] == "http"


class _Capture(Transport):
    envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        type(self).envelopes.append(envelope)


@pytest.fixture
def captured() -> Iterator[list[Envelope]]:
    _Capture.envelopes = []
    configure_sentry(
        "kit-tests",
        SentrySettings(dsn=SecretStr("http://public@127.0.0.1:9/1")),
        "test",
        transport=_Capture,
    )
    yield _Capture.envelopes
    sentry_sdk.init()  # back to a disabled client


def test_real_sdk_event_is_scrubbed_before_sending(captured: list[Envelope]) -> None:
    sentry_sdk.add_breadcrumb(message=f"lead {EMAIL}", data={"token": TOKEN})
    customer_email = EMAIL  # a local variable, as Sentry captures frame locals
    try:
        raise RuntimeError(f"cannot match {customer_email} / {PHONE}")
    except RuntimeError:
        sentry_sdk.capture_exception()
    sentry_sdk.flush()
    events = [item.payload.json for env in captured for item in env.items if item.type == "event"]
    assert len(events) == 1
    assert events[0]["exception"]["values"][0]["type"] == "RuntimeError"
    _assert_clean(events[0])


def test_without_dsn_nothing_is_initialised(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    monkeypatch.setattr(sentry_sdk, "init", lambda *a, **k: calls.append((a, k)))
    configure_sentry("kit-tests", SentrySettings(), "test")
    assert calls == []
