"""FastAPI app factory: liveness, readiness, tracing and error responses that never echo input.

``GET /health`` does no I/O (the process is alive); ``GET /ready`` runs the service's checks
(database, broker...) concurrently, each bounded by a timeout, and answers 503 if any fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from trackai_kit.logging import get_logger
from trackai_kit.redaction import redact_text

ReadinessCheck = tuple[str, Callable[[], Awaitable[None]]]
READINESS_TIMEOUT_S = 3.0

log = get_logger(__name__)


async def _run_check(check: Callable[[], Awaitable[None]], timeout_s: float) -> str:
    try:
        async with asyncio.timeout(timeout_s):
            await check()
    except TimeoutError:
        return f"TimeoutError: no answer within {timeout_s:g}s"
    except Exception as exc:
        # Error messages can quote connection strings; keep the class and a redacted message.
        return redact_text(f"{type(exc).__name__}: {exc}")[:300]
    return "ok"


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # FastAPI's default body quotes the offending input; PII would leak back and into proxies' logs.
    errors = [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors()
    ]
    return JSONResponse(status_code=422, content={"error": "invalid_request", "detail": errors})


async def _unhandled_error(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "unhandled error in request",
        method=request.method,
        path=request.url.path,
        exc_info=exc,
    )
    return JSONResponse(status_code=500, content={"error": "internal_error"})


def create_app(
    service: str,
    *,
    readiness: Sequence[ReadinessCheck] = (),
    title: str | None = None,
    readiness_timeout_s: float = READINESS_TIMEOUT_S,
) -> FastAPI:
    """A FastAPI app with ``/health``, ``/ready``, OpenTelemetry instrumentation and safe errors."""
    app = FastAPI(title=title or f"trackai-{service}")
    checks = tuple(readiness)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        results = await asyncio.gather(*(_run_check(fn, readiness_timeout_s) for _, fn in checks))
        outcome = {name: result for (name, _), result in zip(checks, results, strict=True)}
        ok = all(result == "ok" for result in results)
        if not ok:
            log.warning("not ready", checks=outcome)
        body: dict[str, Any] = {
            "status": "ready" if ok else "not_ready",
            "service": service,
            "checks": outcome,
        }
        return JSONResponse(status_code=200 if ok else 503, content=body)

    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unhandled_error)
    # One server span per request; the instrumentation's extra "http send"/"http receive" child
    # spans (one per ASGI message) only repeat its timing at several times its cost.
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls="health,ready", exclude_spans=["receive", "send"]
    )
    return app
