"""One sale is one trace: the webhook's HTTP server span in ingestion, the relay's publish, the
matcher's consume (and its own publish), the dispatcher's consume and its HTTP call to Meta share
one trace id, each span parented across the process and broker boundaries (W3C trace context in
the outbox rows and the AMQP message headers).

Every process runs as deployed (ingestion ``serve`` and ``relay``, the matcher's and the
dispatcher's ``consume``) and exports its spans over OTLP/gRPC to a collector in this test (the
OpenTelemetry protocol's own service, decoded with ``opentelemetry-proto``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_pb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as metrics_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as trace_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.e2e.conftest import Stack
from tests.e2e.test_purchase_flow import (
    KIWIFY_TOKEN,
    META_TOKEN,
    PIXEL_ID,
    _kiwify_webhook,
    _trackai,
    _wait_for,
)
from trackai_kit.identity import event_id

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

READY_S = 150.0


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


class _Traces(trace_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.lock = threading.Lock()

    def Export(
        self, request: trace_pb.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_pb.ExportTraceServiceResponse:
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        Span(
                            service=resource.get("service.name", ""),
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes={
                                a.key: a.value.string_value or a.value.int_value
                                for a in span.attributes
                            },
                        )
                    )
        with self.lock:
            self.spans.extend(received)
        return trace_pb.ExportTraceServiceResponse()


class _Metrics(metrics_grpc.MetricsServiceServicer):
    """Accepts the processes' OTLP metrics (they push them to the same endpoint) and drops them."""

    def Export(
        self, request: metrics_pb.ExportMetricsServiceRequest, context: grpc.ServicerContext
    ) -> metrics_pb.ExportMetricsServiceResponse:
        return metrics_pb.ExportMetricsServiceResponse()


@pytest.fixture
def collector() -> Iterator[tuple[str, _Traces]]:
    """An OTLP/gRPC collector on a free port: its endpoint and what it received."""
    traces = _Traces()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_grpc.add_TraceServiceServicer_to_server(traces, server)
    metrics_grpc.add_MetricsServiceServicer_to_server(_Metrics(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", traces
    finally:
        server.stop(grace=None)


def _spans(traces: _Traces) -> list[Span]:
    with traces.lock:
        return list(traces.spans)


def test_one_sale_is_one_trace_from_the_webhook_to_metas_answer(
    stack: Stack, meta: Any, collector: tuple[str, _Traces]
) -> None:
    meta_url, meta_client = meta
    endpoint, traces = collector
    # Spans leave each process within 200 ms instead of the batch processor's default 5 s.
    stack.env.update(
        META_GRAPH_URL=meta_url, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_BSP_SCHEDULE_DELAY="200"
    )
    provisioner = stack.start("provisioner")
    stack.wait_ready(provisioner, READY_S)
    stack.env["PROVISIONER_GRPC_TARGET"] = f"127.0.0.1:{provisioner.grpc_port}"
    tenant_id = str(json.loads(_trackai(stack, "tenant", "create", "--name", "Loja Rastro",
                                        "--slug", "loja-rastro"))["id"])  # fmt: skip
    _trackai(stack, "tenant", "set-gateway", tenant_id, "--gateway", "kiwify",
             "--secret-file", "-", stdin=KIWIFY_TOKEN)  # fmt: skip
    _trackai(stack, "tenant", "set-meta", tenant_id, "--pixel-id", PIXEL_ID,
             "--access-token-file", "-", stdin=META_TOKEN)  # fmt: skip
    ingestion = stack.start("ingestion", INGESTION_RELAY_IN_SERVE="false")
    procs = [
        ingestion,
        stack.start("ingestion", "relay", grpc=False),
        stack.start("matcher", "consume", grpc=False),
        stack.start("dispatcher", "consume", grpc=False, DISPATCHER_BATCH_DEADLINE_MS="50"),
    ]
    for proc in procs:
        stack.wait_ready(proc, READY_S)

    order = "trace-order-1"
    body = _kiwify_webhook(order)
    signature = hmac.new(KIWIFY_TOKEN.encode(), body, hashlib.sha1).hexdigest()
    answer = httpx.post(
        f"{ingestion.http}/api/v1/webhooks/kiwify/{tenant_id}?signature={signature}",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.json()["status"] == "accepted", answer.text
    sale = event_id(tenant_id, "kiwify", order, "Purchase")
    _wait_for(lambda: meta_client.events(event_id=sale), 90, "the sale at Meta")

    def webhook_span() -> Span | None:
        return next(
            (
                s
                for s in _spans(traces)
                if s.service == "ingestion"
                and s.kind == trace_pb2.Span.SPAN_KIND_SERVER
                and "/api/v1/webhooks/kiwify" in json.dumps(s.attributes)
            ),
            None,
        )

    root: Span = _wait_for(webhook_span, 30, "the webhook's HTTP server span")

    def meta_call() -> Span | None:
        # The POST to Meta (the registry call is a client span of the dispatcher too), once its
        # ancestors are in: a parent span is exported when it ends, after its children.
        spans = [s for s in _spans(traces) if s.trace_id == root.trace_id]
        ids = {s.span_id for s in spans}
        post = next(
            (
                s
                for s in spans
                if s.service == "dispatcher"
                and s.kind == trace_pb2.Span.SPAN_KIND_CLIENT
                and "http.request.method" in json.dumps(s.attributes)
            ),
            None,
        )
        known = {s.span_id: s for s in spans}
        walk = post
        while walk is not None and walk.parent_id:
            if walk.parent_id not in ids:
                return None
            walk = known[walk.parent_id]
        return post

    client = _wait_for(meta_call, 30, "the dispatcher's call to Meta in the webhook's trace")
    sale_spans = [s for s in _spans(traces) if s.trace_id == root.trace_id]
    by_id = {s.span_id: s for s in sale_spans}

    def chain(span: Span) -> list[Span]:
        """``span`` and its ancestors, up to the trace's root, each parent received."""
        path = [span]
        while path[-1].parent_id:
            parent = by_id.get(path[-1].parent_id)
            assert parent is not None, f"{path[-1]} has a parent that was never exported"
            path.append(parent)
        return path

    steps = [(s.service, s.kind, s.name) for s in reversed(chain(client))]
    assert steps[0][:2] == ("ingestion", trace_pb2.Span.SPAN_KIND_SERVER), steps
    kinds = trace_pb2.Span
    expected = [
        ("ingestion", kinds.SPAN_KIND_SERVER),
        ("ingestion", kinds.SPAN_KIND_PRODUCER),  # the relay's publish to ingest-events
        ("matcher", kinds.SPAN_KIND_CONSUMER),
        ("matcher", kinds.SPAN_KIND_PRODUCER),  # its relay's publish to capi-dispatch
        ("dispatcher", kinds.SPAN_KIND_CONSUMER),
        ("dispatcher", kinds.SPAN_KIND_CLIENT),
    ]
    remote = [
        (service, kind)
        for service, kind, name in steps
        if kind != kinds.SPAN_KIND_INTERNAL and ".retry." not in name
    ]
    # A sale that waited for its session's hit (this one names a session never visited) went
    # round the matcher's delay queue, in the same trace: its consumer hop shows once per try.
    remote = [step for n, step in enumerate(remote) if n == 0 or step != remote[n - 1]]
    assert [step for step in remote if step in expected] == expected, steps
    # Every span of the sale is one of this trace's: nothing else started a trace of its own
    # for it (each process's spans about this order hang off the webhook's).
    assert chain(client)[-1] == root
