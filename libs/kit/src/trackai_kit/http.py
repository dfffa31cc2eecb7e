"""FastAPI app factory: liveness, readiness, tracing and error responses that never echo input.

``GET /health`` does no I/O (the process is alive); ``GET /ready`` runs the service's checks
(database, broker...) concurrently, each bounded by a timeout, and answers 503 if any fails.

Telemetry costs per request only what somebody reads. While spans or metrics are exported,
FastAPI's native OpenTelemetry support makes one server span per request (W3C context from the
request headers) and the HTTP server metrics. Otherwise a lean layer only opens a non-recording
span continuing the caller's trace, so log lines and outgoing messages still carry its ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.telemetry import TelemetryConfig
from opentelemetry import context, propagate, trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.propagators.textmap import Getter
from starlette.types import ASGIApp, Receive, Scope, Send

from trackai_kit.logging import get_logger
from trackai_kit.redaction import redact_text
from trackai_kit.telemetry import (
    metrics_pushed,
    prometheus_exposed,
    prometheus_text,
    spans_exported,
)

ReadinessCheck = tuple[str, Callable[[], Awaitable[None]]]
READINESS_TIMEOUT_S = 3.0
#: Probes every few seconds would drown the traces; they get no span.
_UNTRACED_PATHS = frozenset({"/health", "/ready", "/metrics"})

#: Headers that proxies and load balancers add: their presence means "not a direct scrape".
_PROXIED = frozenset({"x-forwarded-for", "forwarded", "x-real-ip"})

log = get_logger(__name__)

AsgiHeaders = Iterable[tuple[bytes, bytes]]


class _AsgiHeadersGetter(Getter[AsgiHeaders]):
    """Reads propagation headers straight from the ASGI scope (names arrive lower-cased)."""

    def get(self, carrier: AsgiHeaders, key: str) -> list[str] | None:
        name = key.encode("latin-1")
        values = [value.decode("latin-1") for header, value in carrier if header == name]
        return values or None

    def keys(self, carrier: AsgiHeaders) -> list[str]:
        return [header.decode("latin-1") for header, _ in carrier]


_HEADERS = _AsgiHeadersGetter()


class _Telemetry:
    """Decides, per request, which of the two layers observes it (never both)."""

    def __init__(self) -> None:
        # Metric readers are attached by configure_telemetry, before any app is built; FastAPI
        # takes its meter provider once, so the choice is made here rather than per request.
        # The Prometheus scrape alone does not turn them on (see metrics_pushed).
        self.metrics = metrics_pushed()

    def exported(self) -> bool:
        return self.metrics or spans_exported()

    def native_skips(self, scope: Scope) -> bool:
        return scope["path"] in _UNTRACED_PATHS or not self.exported()

    def config(self) -> TelemetryConfig:
        return {
            "tracing": True,
            "metrics": True,
            # A meter provider without a reader would still take every measurement.
            "meter_provider": None if self.metrics else NoOpMeterProvider(),
            # Exceptions reach Sentry and the JSON logs (redacted); FastAPI's OTel log records
            # would carry their messages unredacted.
            "logs": False,
            # One server span per request, not three more children (dependencies, endpoint,
            # serialisation) that mostly split the same few hundred microseconds.
            "operation_spans": False,
            # Exporters are the kit's business (configure_telemetry), not the framework's.
            "auto_configure": False,
            "exclude": self.native_skips,
        }


class _TraceContextOnly:
    """Outermost ASGI layer: a non-recording server span for requests nobody exports.

    It continues the caller's W3C trace context (or starts a trace) with real ids and collects
    no attributes, timing or metrics. Being outside Starlette's error middleware, the
    unhandled-error log line still carries the request's trace ids.
    """

    def __init__(self, app: ASGIApp, telemetry: _Telemetry) -> None:
        self.app = app
        self._telemetry = telemetry
        self._tracer = trace.get_tracer(__name__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in _UNTRACED_PATHS
            or self._telemetry.exported()
        ):
            await self.app(scope, receive, send)
            return
        parent = propagate.extract(scope["headers"], getter=_HEADERS)
        span = self._tracer.start_span("HTTP", parent, kind=trace.SpanKind.SERVER)
        token = context.attach(trace.set_span_in_context(span, parent))
        try:
            await self.app(scope, receive, send)
        finally:
            context.detach(token)
            span.end()


class _ServiceApp(FastAPI):
    """FastAPI with the kit's telemetry: native when exported, trace context only otherwise."""

    def __init__(self, *, title: str, docs: bool) -> None:
        self._kit_telemetry = _Telemetry()
        # The API description maps every route and parameter for whoever asks: development only.
        super().__init__(
            title=title,
            telemetry=self._kit_telemetry.config(),
            docs_url="/docs" if docs else None,
            redoc_url="/redoc" if docs else None,
            openapi_url="/openapi.json" if docs else None,
        )

    def build_middleware_stack(self) -> ASGIApp:
        return _TraceContextOnly(super().build_middleware_stack(), self._kit_telemetry)


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
    # A route's tenant (``/{tenant_id}/...``) is the tag Sentry files the error under.
    tenant = request.path_params.get("tenant_id")
    log.error(
        "unhandled error in request",
        method=request.method,
        path=request.url.path,
        exc_info=exc,
        **({"tenant_id": str(tenant)} if tenant else {}),
    )
    return JSONResponse(status_code=500, content={"error": "internal_error"})


def create_app(
    service: str,
    *,
    readiness: Sequence[ReadinessCheck] = (),
    title: str | None = None,
    readiness_timeout_s: float = READINESS_TIMEOUT_S,
    expose_details: bool = False,
) -> FastAPI:
    """A FastAPI app with ``/health``, ``/ready``, ``/metrics`` (when Prometheus is on),
    OpenTelemetry instrumentation and safe errors.

    ``expose_details`` (local/test only) serves ``/docs`` and ``/openapi.json`` and puts each
    readiness check's error in ``/ready``; otherwise a failing check answers only ``failing``
    (its error, which can name a host, goes to the log).
    """
    app = _ServiceApp(title=title or f"trackai-{service}", docs=expose_details)
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
            "checks": outcome
            if expose_details
            else {name: "ok" if result == "ok" else "failing" for name, result in outcome.items()},
        }
        return JSONResponse(status_code=200 if ok else 503, content=body)

    if prometheus_exposed():

        @app.get("/metrics", include_in_schema=False)
        def prometheus_metrics(request: Request) -> Response:
            # Prometheus scrapes the pod directly. A request relayed by a proxy (the public
            # ingress of ingestion and the console forwards every path) is not a scrape: tenant
            # ids and volumes are nobody else's business.
            if _PROXIED.intersection(request.headers.keys()):
                return JSONResponse(status_code=404, content={"detail": "Not Found"})
            # A sync handler: collecting runs the SDK's locks and callbacks off the event loop.
            body, content_type = prometheus_text()
            return Response(body, media_type=content_type)

    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unhandled_error)
    return app
