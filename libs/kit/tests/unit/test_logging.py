"""JSON log lines carry service, level, timestamp and trace ids, and never personal data."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry import trace

from trackai_kit.logging import configure_logging, get_logger
from trackai_kit.settings import LogSettings


def _lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_json_lines_carry_trace_ids_and_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogSettings(level="INFO"), "kit-tests")
    log = get_logger("kit.test")
    with trace.get_tracer("t").start_as_current_span("work") as span:
        log.info("buyer joao@example.com paid", phone="11 91234-5678", tenant_id="t1")
        logging.getLogger("some.library").warning("stdlib says %s", "maria@example.org")
        ctx = span.get_span_context()
    log.info("outside any span")
    lines = _lines(capsys.readouterr().out)
    assert len(lines) == 3
    structured, stdlib, outside = lines
    for line in (structured, stdlib):
        assert line["service"] == "kit-tests"
        assert line["trace_id"] == format(ctx.trace_id, "032x")
        assert line["span_id"] == format(ctx.span_id, "016x")
        assert "timestamp" in line
    assert structured["level"] == "info"
    assert structured["event"] == "buyer [EMAIL] paid"
    assert structured["phone"] == "[REDACTED]"
    assert structured["tenant_id"] == "t1"
    assert stdlib["level"] == "warning"
    assert stdlib["event"] == "stdlib says [EMAIL]"
    assert stdlib["logger"] == "some.library"
    assert "trace_id" not in outside


def test_exceptions_are_rendered_and_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogSettings(level="INFO"), "kit-tests")
    try:
        raise ValueError("no match for joao@example.com")
    except ValueError:
        get_logger("kit.test").exception("handler failed")
    (line,) = _lines(capsys.readouterr().out)
    assert line["level"] == "error"
    assert "ValueError" in str(line["exception"])
    assert "joao@example.com" not in json.dumps(line)


def test_level_filters(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogSettings(level="WARNING"), "kit-tests")
    get_logger("kit.test").info("hidden")
    get_logger("kit.test").warning("shown")
    assert [line["event"] for line in _lines(capsys.readouterr().out)] == ["shown"]
