"""Sentry events and breadcrumbs leave the process without e-mails, phones, tokens or bodies."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from pydantic import SecretStr
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from trackai_kit.sentry import configure_sentry, integrations, scrub_breadcrumb, scrub_event
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
    # Back to a disabled client; with the SDK's defaults init() would patch Starlette, httpx,
    # asyncpg... for the rest of the session.
    sentry_sdk.init(default_integrations=False, auto_enabling_integrations=False)


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


def test_events_carry_no_local_variables_and_no_secret_in_exception_text(
    captured: list[Envelope],
) -> None:
    from trackai.provisioner.v1 import provisioner_service_pb2 as pb

    config = pb.WebhookConfig(
        gateways=[pb.GatewayCredential(gateway="perfectpay", secret=TOKEN, signing_secret=TOKEN)],
    )
    destination = pb.MetaDestination(pixel_id="1", access_token=TOKEN)
    name = "".join(reversed("adicerapA airaM"))  # not in this file's source lines either
    try:
        # An error message that quotes a message with decrypted secrets in protobuf text form,
        # and a dict's repr with a name.
        raise RuntimeError(f"cannot use {config} {destination}: { ({'full_name': name}) }")
    except RuntimeError:
        sentry_sdk.capture_exception()
    sentry_sdk.flush()
    (event,) = [i.payload.json for env in captured for i in env.items if i.type == "event"]
    frames = event["exception"]["values"][0]["stacktrace"]["frames"]
    assert frames and all("vars" not in frame for frame in frames)
    dumped = json.dumps(event)
    assert TOKEN not in dumped
    assert "Aparecida" not in dumped


def test_only_the_integrations_error_reporting_needs(captured: list[Envelope]) -> None:
    """No request/query instrumentation (its per-request spans and breadcrumbs cost ~60 % of the
    ingress throughput, issue 19) and no breadcrumb per log line."""
    client = sentry_sdk.get_client()
    assert set(client.integrations) == {"logging", "excepthook", "threading", "atexit", "dedupe"}
    assert client.options["traces_sample_rate"] is None
    assert client.options["include_local_variables"] is False
    assert client.options["event_scrubber"] is not None  # the SDK's own scrubbing stays on
    logging.getLogger("kit-tests").warning("a routine line %s", "x")
    sentry_sdk.capture_message("after the line")
    sentry_sdk.flush()
    (event,) = [i.payload.json for env in captured for i in env.items if i.type == "event"]
    crumbs = event.get("breadcrumbs", {}).get("values", [])
    assert not [c for c in crumbs if c.get("category") == "kit-tests"]


def test_error_log_lines_become_events(captured: list[Envelope]) -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        logging.getLogger("kit-tests").exception("handler failed")
    sentry_sdk.flush()
    (event,) = [i.payload.json for env in captured for i in env.items if i.type == "event"]
    assert event["exception"]["values"][0]["type"] == "ValueError"


def test_a_structlog_error_is_one_issue_named_by_its_event(captured: list[Envelope]) -> None:
    import structlog

    from trackai_kit.logging import configure_logging, get_logger
    from trackai_kit.settings import LogSettings

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(LogSettings(level="INFO"), "kit-tests")
    try:
        for order in ("o-1", "o-2"):
            get_logger("kit-tests").error("order not stored", order_id=order, email=EMAIL)
    finally:
        structlog.reset_defaults()
        root.handlers[:], root.level = handlers, level
    sentry_sdk.flush()
    events = [i.payload.json for env in captured for i in env.items if i.type == "event"]
    assert [e["logentry"]["message"] for e in events] == ["order not stored"] * 2
    assert [e["extra"]["order_id"] for e in events] == ["o-1", "o-2"]
    _assert_clean(events)


def test_tracing_turns_request_and_query_instrumentation_on() -> None:
    # Checked on the list, not through init(): the SDK's patches would outlive this test.
    chosen = {integration.identifier for integration in integrations(0.5)}
    assert {"starlette", "fastapi", "asyncpg", "logging"} <= chosen
    assert not {"starlette", "fastapi", "asyncpg"} & {i.identifier for i in integrations(0.0)}


def test_without_dsn_nothing_is_initialised(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    monkeypatch.setattr(sentry_sdk, "init", lambda *a, **k: calls.append((a, k)))
    configure_sentry("kit-tests", SentrySettings(), "test")
    assert calls == []
