"""OpenTelemetry set-up (tracing + metrics), done once per process, and W3C context propagation.

Trace context crosses process boundaries in AMQP headers and gRPC metadata through
:func:`inject_headers` / :func:`extract_context`. :func:`spans_exported` and
:func:`metrics_exported` tell instrumentation whether anybody reads what it would record.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

from trackai_kit.settings import TelemetrySettings

_lock = threading.Lock()
_configured = False
_prometheus = False


class _SampleWhileExported(Sampler):
    """Records spans only once a span processor exists; until then every span is dropped.

    A dropped span still gets real ids (log lines carry ``trace_id``/``span_id`` and the context
    still propagates, unsampled), but no attributes, events or timing are collected for nobody:
    without an exporter the per-request spans cost little, and queries are not instrumented at all.
    """

    def __init__(self, delegate: Sampler) -> None:
        self._delegate = delegate
        self.exporting = False

    def should_sample(  # noqa: PLR0917 - the Sampler interface's signature
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if self.exporting:
            return self._delegate.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )
        parent = trace.get_current_span(parent_context).get_span_context()
        return SamplingResult(Decision.DROP, None, parent.trace_state if parent.is_valid else None)

    def get_description(self) -> str:
        return f"SampleWhileExported{{{self._delegate.get_description()}}}"


class _TracerProvider(TracerProvider):
    """Opens its :class:`_SampleWhileExported` gate when the first span processor is added."""

    def __init__(self, sampler: _SampleWhileExported, **kwargs: Any) -> None:
        super().__init__(sampler=sampler, **kwargs)
        self._gate = sampler

    @property
    def exporting(self) -> bool:
        return self._gate.exporting

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        self._gate.exporting = True
        # Query spans only once somebody reads them: the instrumentation wraps every statement,
        # and even a dropped span costs its creation on every query.
        _instrument_asyncpg()


class _MeterProvider(MeterProvider):
    """Knows whether any metric reader is attached (the SDK's own list misses later additions)."""

    def __init__(self, *, metric_readers: Sequence[MetricReader], **kwargs: Any) -> None:
        super().__init__(metric_readers=metric_readers, **kwargs)
        self._readers = set(metric_readers)

    @property
    def has_readers(self) -> bool:
        return bool(self._readers)

    @property
    def has_push_readers(self) -> bool:
        """Readers other than the Prometheus one (OTLP, or a test's in-memory reader)."""
        return any(not _is_prometheus(reader) for reader in self._readers)

    def add_metric_reader(self, metric_reader: MetricReader) -> None:
        super().add_metric_reader(metric_reader)
        self._readers.add(metric_reader)

    def remove_metric_reader(self, metric_reader: MetricReader) -> None:
        super().remove_metric_reader(metric_reader)
        self._readers.discard(metric_reader)


def configure_telemetry(service: str, settings: TelemetrySettings) -> None:
    """Install the SDK tracer and meter providers (idempotent: later calls do nothing).

    With ``METRICS_PROMETHEUS`` (the default) metrics are read on each scrape of ``GET /metrics``
    (:func:`prometheus_text`); with neither that nor an OTLP endpoint measurements are skipped.
    Without ``OTEL_EXPORTER_OTLP_ENDPOINT`` (and no span processor added later) spans are not
    recorded: they still get real ids, so logs carry them; the meter provider has no reader, and
    :func:`metrics_exported` tells instrumentation to skip recording. With an exporter (spans
    and metrics over OTLP), spans are sampled by
    ``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG`` (OpenTelemetry's standard variables;
    default ``parentbased_always_on``), e.g. ``parentbased_traceidratio`` and ``0.1`` to keep one
    trace in ten where per-request spans cost too much.
    """
    global _configured  # noqa: PLW0603 - OpenTelemetry providers are process-global by design
    with _lock:
        if _configured:
            return
        resource = Resource.create(
            {"service.name": service, "service.namespace": settings.service_namespace}
        )
        tracer_provider = _TracerProvider(_SampleWhileExported(_env_sampler()), resource=resource)
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
        if settings.prometheus:
            readers.append(_prometheus_reader())
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(_MeterProvider(resource=resource, metric_readers=readers))
        propagate.set_global_textmap(
            CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
        )
        _configured = True


def _prometheus_reader() -> MetricReader:
    """A reader that the ``/metrics`` endpoint collects on each scrape (prometheus_client's
    default registry, which also carries the process collector: CPU, memory, open files)."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    global _prometheus  # noqa: PLW0603 - one reader per process, like the providers
    # No scope labels: every series would carry the meter's name as well.
    _prometheus = True
    return PrometheusMetricReader(scope_info_enabled=False)


def prometheus_exposed() -> bool:
    """Whether ``GET /metrics`` has anything to serve (the Prometheus reader is installed)."""
    return _prometheus


def prometheus_text() -> tuple[bytes, str]:
    """The process's metrics in Prometheus' text format, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def spans_exported() -> bool:
    """Whether spans started now are recorded for an exporter (a span processor exists).

    False before :func:`configure_telemetry` (spans are no-ops) and, after it, until a span
    processor is added: spans then still get real ids but record nothing.
    """
    provider = trace.get_tracer_provider()
    if isinstance(provider, _TracerProvider):
        return provider.exporting
    # Another SDK provider installed first: it may well record, so assume it does.
    return isinstance(provider, TracerProvider)


def exported_span(
    tracer: trace.Tracer,
    name: str,
    *,
    parent_headers: Mapping[str, Any] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Attributes = None,
) -> AbstractContextManager[trace.Span]:
    """``tracer.start_as_current_span(...)`` while spans are exported, continuing the trace in
    ``parent_headers`` when given; otherwise no span and no header parsing at all
    (``INVALID_SPAN``): the current context, and the trace ids it carries, stay as they are."""
    if not spans_exported():
        return contextlib.nullcontext(trace.INVALID_SPAN)
    context = extract_context(parent_headers) if parent_headers is not None else None
    return tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes)


def _is_prometheus(reader: MetricReader) -> bool:
    return type(reader).__name__ == "PrometheusMetricReader"


def metrics_pushed() -> bool:
    """Whether a metric reader other than the Prometheus scrape reads the meter provider.

    The per-request HTTP server metrics (FastAPI's native instrumentation) are recorded only
    then: through Prometheus alone they would cost ~10 % of a webhook's CPU for series that the
    services' own counters and histograms already cover (docs/metrics.md).
    """
    provider = metrics.get_meter_provider()
    if isinstance(provider, _MeterProvider):
        return provider.has_push_readers
    return isinstance(provider, MeterProvider)


def metrics_exported() -> bool:
    """Whether the global meter provider has a metric reader (else measurements go nowhere)."""
    provider = metrics.get_meter_provider()
    if isinstance(provider, _MeterProvider):
        return provider.has_readers
    return isinstance(provider, MeterProvider)


def _env_sampler() -> Sampler:
    """The sampler ``OTEL_TRACES_SAMPLER`` names (the SDK's own reading), else parent-based on."""
    if os.environ.get("OTEL_TRACES_SAMPLER"):
        return TracerProvider(shutdown_on_exit=False).sampler
    return ParentBased(ALWAYS_ON)


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
