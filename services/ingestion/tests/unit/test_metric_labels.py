"""The webhook and collect metrics' labels come from bounded sets: every answer maps to one of the
documented outcomes (docs/metrics.md), and free text (ignore reasons) never becomes a label."""

from __future__ import annotations

import pytest

from trackai_ingestion.telemetry import status_outcome, webhook_outcome


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, {"status": "accepted", "conversion_id": "c", "duplicate": False}, ("accepted", "")),
        (200, {"status": "accepted", "conversion_id": "c", "duplicate": True}, ("duplicate", "")),
        (
            200,
            {"status": "ignored", "reason": "status waiting_payment for order 123"},
            ("ignored", ""),
        ),
        (
            401,
            {"error": "invalid_credentials", "credential": "token"},
            ("401", "invalid_credentials"),
        ),
        (404, {"error": "unknown_tenant"}, ("4xx", "unknown_tenant")),
        (422, {"error": "invalid_payload", "field": "order_id"}, ("4xx", "invalid_payload")),
        (429, {"error": "rate_limited"}, ("429", "rate_limited")),
        (503, {"error": "storage_unavailable"}, ("503", "storage_unavailable")),
        (500, {"error": "internal_error"}, ("5xx", "internal_error")),
    ],
)
def test_webhook_outcomes(status: int, body: dict[str, object], expected: tuple[str, str]) -> None:
    assert webhook_outcome(status, body) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [(204, "accepted"), (400, "4xx"), (403, "4xx"), (429, "429"), (503, "503"), (500, "5xx")],
)
def test_collect_outcomes(status: int, expected: str) -> None:
    assert status_outcome(status) == expected
