"""Kit test fixtures: the SDK tracer provider (once per session) with an in-memory span exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from trackai_kit.settings import TelemetrySettings
from trackai_kit.telemetry import configure_telemetry

_exporter = InMemorySpanExporter()


@pytest.fixture(scope="session", autouse=True)
def _telemetry() -> None:
    configure_telemetry("kit-tests", TelemetrySettings())
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "another provider was installed first"
    if not getattr(provider, "_kit_tests_exporter", False):
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        provider._kit_tests_exporter = True  # type: ignore[attr-defined]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Finished spans recorded during the test."""
    _exporter.clear()
    yield _exporter
    _exporter.clear()
