"""JSON log lines carry service, level, timestamp and trace ids, and never personal data."""

from __future__ import annotations

import json
import logging

import pytest
import structlog
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


def _fail_with_secrets_in_locals() -> None:
    token = "EAAG-meta-access-token-Zq81"
    buyer_email = "ana.souza@example.com"
    try:
        {"token": token, "email": buyer_email}["missing"]
    except KeyError as exc:
        plaintext_password = "hunter2-correct-horse"
        raise RuntimeError(f"lookup failed ({len(plaintext_password)} chars)") from exc


@pytest.mark.parametrize("json_output", [True, False], ids=["json", "console"])
def test_tracebacks_never_show_frame_locals(
    capsys: pytest.CaptureFixture[str], json_output: bool
) -> None:
    configure_logging(LogSettings(level="INFO", json_output=json_output), "kit-tests")
    log = get_logger("kit.test")
    try:
        _fail_with_secrets_in_locals()
    except RuntimeError as exc:
        log.exception("structlog exception")
        log.error("structlog exc_info", exc_info=exc)
        logging.getLogger("some.library").exception("stdlib exception")
    out = capsys.readouterr().out
    # The tracebacks were rendered (both exceptions of the chain, with their frames) ...
    assert out.count("_fail_with_secrets_in_locals") >= 3
    assert out.count("KeyError") >= 3 and out.count("RuntimeError") >= 3
    # ... without any frame's local variables.
    for value in ("EAAG-meta-access-token-Zq81", "ana.souza", "hunter2-correct-horse"):
        assert value not in out
    # The console renderer's default exception formatter (rich's when installed) shows locals:
    # it must never be the one in use, even for an event that still carries exc_info (the JSON
    # renderer writes only the exception's repr then).
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler.formatter, structlog.stdlib.ProcessorFormatter)
    renderer = handler.formatter.processors[-1]
    try:
        _fail_with_secrets_in_locals()
    except RuntimeError as exc:
        rendered = str(renderer(None, "error", {"event": "raw", "exc_info": exc}))
    assert "EAAG-meta-access-token-Zq81" not in rendered
    assert ("_fail_with_secrets_in_locals" in rendered) is not json_output


def test_level_filters(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogSettings(level="WARNING"), "kit-tests")
    get_logger("kit.test").info("hidden")
    get_logger("kit.test").warning("shown")
    assert [line["event"] for line in _lines(capsys.readouterr().out)] == ["shown"]
