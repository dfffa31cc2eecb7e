"""Without an exporter (a fresh process: the test session has one), requests record no span, yet
log lines, including the unhandled-error line, carry the caller's trace id or a new one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"

SCRIPT = textwrap.dedent(
    f"""
    import asyncio, json
    import httpx
    from opentelemetry import trace
    from trackai_kit.http import create_app
    from trackai_kit.logging import configure_logging, get_logger
    from trackai_kit.settings import LogSettings, TelemetrySettings
    from trackai_kit.telemetry import configure_telemetry, metrics_exported, spans_exported

    configure_logging(LogSettings(level="INFO"), "svc")
    configure_telemetry("svc", TelemetrySettings())
    app = create_app("svc")
    log = get_logger("svc.test")

    @app.post("/hooks", status_code=202)
    async def hook():
        span = trace.get_current_span()
        log.info("accepted")
        return {{"recording": span.is_recording()}}

    @app.get("/boom")
    async def boom():
        raise RuntimeError("boom")

    async def main():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            parent = {{"traceparent": "00-{TRACE_ID}-{PARENT_SPAN_ID}-01"}}
            continued = await client.post("/hooks", json={{}}, headers=parent)
            fresh = await client.post("/hooks", json={{}})
            boom = await client.get("/boom", headers=parent)
            await client.get("/health")
        print(json.dumps({{
            "result": True,
            "spans_exported": spans_exported(),
            "metrics_exported": metrics_exported(),
            "statuses": [continued.status_code, fresh.status_code, boom.status_code],
            "recording": [continued.json()["recording"], fresh.json()["recording"]],
        }}))

    asyncio.run(main())
    """
)


def _run() -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY", "OTEL"))}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_unexported_requests_record_nothing_but_logs_carry_trace_ids() -> None:
    lines = _run()
    (result,) = [line for line in lines if line.get("result")]
    assert result["spans_exported"] is False
    assert result["metrics_exported"] is False
    assert result["statuses"] == [202, 202, 500]
    assert result["recording"] == [False, False]

    continued, fresh = [line for line in lines if line.get("event") == "accepted"]
    assert continued["trace_id"] == TRACE_ID
    assert continued["span_id"] != PARENT_SPAN_ID  # the request's own (server) span
    assert len(fresh["trace_id"]) == 32
    assert fresh["trace_id"] not in (TRACE_ID, "0" * 32)

    (error,) = [line for line in lines if line.get("event") == "unhandled error in request"]
    assert error["trace_id"] == TRACE_ID
