"""OpenTelemetry set-up (tracing + metrics), done once per process, and W3C context propagation.

Trace context crosses process boundaries in AMQP headers and gRPC metadata through
:func:`inject_headers` / :func:`extract_context`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from trackai_kit.settings import TelemetrySettings

_lock = threading.Lock()
_configured = False


def configure_telemetry(service: str, settings: TelemetrySettings) -> None:
    """Install the SDK tracer and meter providers (idempotent: later calls do nothing).

    Without ``OTEL_EXPORTER_OTLP_ENDPOINT`` spans still get real ids (so logs carry them) but are
    not exported anywhere.
    """
    global _configured  # noqa: PLW0603 - OpenTelemetry providers are process-global by design
    with _lock:
        if _configured:
            return
        resource = Resource.create(
            {"service.name": service, "service.namespace": settings.service_namespace}
        )
        tracer_provider = TracerProvider(resource=resource)
        readers: list[MetricReader] = []
        if settings.exporter_otlp_endpoint:
            # Imported lazily: the exporter pulls in grpc channels we do not want in unit tests.
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            tracer_provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.exporter_otlp_endpoint))
            )
            readers.append(
                PeriodicExportingMetricReader(
                    OTLPMetricExporter(endpoint=settings.exporter_otlp_endpoint)
                )
            )
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
        propagate.set_global_textmap(
            CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
        )
        _instrument_asyncpg()
        _configured = True


def _instrument_asyncpg() -> None:
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


def inject_headers(carrier: dict[str, Any]) -> None:
    """Write the current trace context (``traceparent``, ``tracestate``) into ``carrier``."""
    propagate.inject(carrier)


def extract_context(carrier: Mapping[str, Any]) -> Context:
    """Read a trace context from message headers or call metadata (values may be bytes)."""
    normalised: dict[str, str] = {}
    for key, value in carrier.items():
        if isinstance(value, bytes):
            normalised[key.lower()] = value.decode("utf-8", "replace")
        elif isinstance(value, str):
            normalised[key.lower()] = value
    return propagate.extract(normalised)


def get_tracer(name: str) -> trace.Tracer:
    """A tracer from the global provider (a no-op one until :func:`configure_telemetry` ran)."""
    return trace.get_tracer(name)


def get_meter(name: str) -> metrics.Meter:
    """A meter from the global provider."""
    return metrics.get_meter(name)
