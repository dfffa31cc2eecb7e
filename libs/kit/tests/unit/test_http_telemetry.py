"""With an exporter, each request gets one server span continuing the caller's trace, and HTTP
server metrics reach a metric reader; probes get neither; span errors carry no exception text."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from trackai_kit.http import create_app
from trackai_kit.telemetry import metrics_exported, spans_exported

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"


def _app(seen: list[trace.SpanContext] | None = None) -> FastAPI:
    app = create_app("svc")

    @app.post("/hooks/{gateway}", status_code=202)
    async def hook(gateway: str, request: Request) -> Response:
        await request.body()
        if seen is not None:
            seen.append(trace.get_current_span().get_span_context())
        return Response(status_code=202)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret joao@example.com")

    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    """A metric reader on the global meter provider for the test's duration."""
    provider = metrics.get_meter_provider()
    reader = InMemoryMetricReader()
    provider.add_metric_reader(reader)  # type: ignore[attr-defined]
    yield reader
    provider.remove_metric_reader(reader)  # type: ignore[attr-defined]


async def test_one_server_span_per_request_continuing_the_callers_trace(
    spans: InMemorySpanExporter,
) -> None:
    assert spans_exported()
    seen: list[trace.SpanContext] = []
    async with _client(_app(seen)) as client:
        response = await client.post("/hooks/kiwify", json={}, headers={"traceparent": TRACEPARENT})
    assert response.status_code == 202
    (span,) = spans.get_finished_spans()
    assert seen == [span.context]  # the endpoint (and its log lines) runs inside it
    assert span.kind is SpanKind.SERVER
    assert span.name == "POST /hooks/{gateway}"
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_SPAN_ID
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/hooks/{gateway}"
    assert span.attributes["http.response.status_code"] == 202
    assert span.attributes["http.request.method"] == "POST"


async def test_probes_get_no_span(spans: InMemorySpanExporter) -> None:
    async with _client(_app()) as client:
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/ready")).status_code == 200
    assert spans.get_finished_spans() == ()


async def test_an_unhandled_error_marks_the_span_without_its_message(
    spans: InMemorySpanExporter,
) -> None:
    async with _client(_app()) as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "RuntimeError"
    # Exception messages can quote personal data; the span must not carry them to the backend.
    recorded = repr((span.attributes, span.status.description, [e.attributes for e in span.events]))
    assert "joao@example.com" not in recorded


async def test_http_server_metrics_reach_a_metric_reader(reader: InMemoryMetricReader) -> None:
    assert metrics_exported()
    async with _client(_app()) as client:
        await client.post("/hooks/kiwify", json={})
        await client.get("/health")
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[object]] = {
        metric.name: list(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    (duration,) = points["http.server.request.duration"]  # /health is not measured
    assert isinstance(duration, HistogramDataPoint)
    assert duration.count == 1
    assert duration.attributes is not None
    assert duration.attributes["http.route"] == "/hooks/{gateway}"
    assert duration.attributes["http.response.status_code"] == 202
    (active,) = points["http.server.active_requests"]
    assert isinstance(active, NumberDataPoint)
    assert active.value == 0
