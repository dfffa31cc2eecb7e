"""Spans are recorded only once something exports them; before that they still carry real ids."""

from __future__ import annotations

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

from trackai_kit.telemetry import _SampleWhileExported, _TracerProvider


def test_spans_are_not_recorded_until_a_span_processor_exists() -> None:
    provider = _TracerProvider(_SampleWhileExported(ParentBased(ALWAYS_ON)), shutdown_on_exit=False)
    tracer = provider.get_tracer(__name__)
    with tracer.start_as_current_span("unexported") as span:
        assert not span.is_recording()
        assert span.get_span_context().is_valid  # log lines still get trace_id / span_id
        with tracer.start_as_current_span("child") as child:
            assert child.get_span_context().trace_id == span.get_span_context().trace_id
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with tracer.start_as_current_span("exported") as span:
        assert span.is_recording()
    assert [s.name for s in exporter.get_finished_spans()] == ["exported"]


def test_queries_are_instrumented_only_once_spans_are_exported() -> None:
    """A fresh process: without an exporter asyncpg is left unwrapped (no span per statement)."""
    import subprocess
    import sys

    script = """
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from trackai_kit.settings import TelemetrySettings
from trackai_kit.telemetry import configure_telemetry
configure_telemetry("probe", TelemetrySettings())
print(AsyncPGInstrumentor().is_instrumented_by_opentelemetry)
trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
print(AsyncPGInstrumentor().is_instrumented_by_opentelemetry)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out == ["False", "True"]
