"""Every process serves Prometheus metrics on its HTTP port, and real traffic shows up in them:
webhooks (accepted, duplicate, 401) and their latency, collect hits, the outbox relay, the
matcher's outcomes and EMQ, the dispatcher's Meta latency, verdicts and health gauges. Every
metric that the chart's Grafana dashboard and alarms query is among those exported.

Scraped from the real processes over HTTP after a sale went through the pipeline to the Meta fake,
parsed with prometheus_client's own text parser (what Prometheus would read). A scrape relayed by a
proxy (``X-Forwarded-For``) is refused: the public ingress must not publish tenant volumes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.e2e.conftest import ServiceProcess, Stack
from tests.e2e.test_purchase_flow import (
    KIWIFY_TOKEN,
    PIXEL_ID,
    _kiwify_webhook,
    _meta_and_pipeline,
    _trackai,
    _wait_for,
)
from trackai_kit.identity import event_id

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

MONITORING = Path(__file__).resolve().parents[2] / "charts/trackai/monitoring"


def _scrape(proc: ServiceProcess) -> list[Sample]:
    response = httpx.get(proc.http + "/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return [
        sample
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]


def _value(samples: list[Sample], name: str, **labels: str) -> float | None:
    """Sum of the samples called ``name`` whose labels include ``labels`` (None: no sample)."""
    found = [
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return sum(found) if found else None


def test_every_process_exports_the_pipeline_metrics_after_real_traffic(stack: Stack, meta) -> None:
    meta_url, meta_client = meta
    stack.env["META_GRAPH_URL"] = meta_url
    provisioner = stack.start("provisioner")
    stack.wait_ready(provisioner)
    stack.env["PROVISIONER_GRPC_TARGET"] = f"127.0.0.1:{provisioner.grpc_port}"
    tenant_id = json.loads(
        _trackai(stack, "tenant", "create", "--name", "Loja Métricas", "--slug", "loja-metricas")
    )["id"]
    _trackai(
        stack,
        "tenant",
        "set-gateway",
        tenant_id,
        "--gateway",
        "kiwify",
        "--secret-file",
        "-",
        stdin=KIWIFY_TOKEN,
    )
    ingestion = _meta_and_pipeline(stack, tenant_id)

    order_id = f"metrics-{uuid.uuid4()}"
    body = _kiwify_webhook(order_id)
    signature = hmac.new(KIWIFY_TOKEN.encode(), body, hashlib.sha1).hexdigest()
    path = f"/api/v1/webhooks/kiwify/{tenant_id}"
    json_type = {"Content-Type": "application/json"}
    with httpx.Client(base_url=ingestion.http, timeout=10) as http:
        assert (
            http.post(f"{path}?signature={signature}", content=body, headers=json_type).json()[
                "status"
            ]
            == "accepted"
        )
        assert http.post(f"{path}?signature={signature}", content=body, headers=json_type).json()[
            "duplicate"
        ]
        refused = http.post(f"{path}?signature={'0' * 40}", content=body, headers=json_type)
        assert refused.status_code == 401
        hit = http.post(
            f"/api/v1/collect/{tenant_id}",
            content=b"{not json",
            headers={"Content-Type": "text/plain", "Origin": "https://elsewhere.example"},
        )
        assert 400 <= hit.status_code < 500
        # The ingress forwards every path: a proxied scrape is not a scrape.
        assert http.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 404

    expected = event_id(tenant_id, "kiwify", order_id, "Purchase")
    _wait_for(
        lambda: meta_client.events(pixel_id=PIXEL_ID, event_id=expected), 60, "the sale at Meta"
    )

    ingest = _scrape(ingestion)
    accepted = _value(ingest, "trackai_ingestion_webhooks_total", gateway="kiwify")
    assert accepted == 3
    assert _value(ingest, "trackai_ingestion_webhooks_total", outcome="accepted") == 1
    assert _value(ingest, "trackai_ingestion_webhooks_total", outcome="duplicate") == 1
    assert _value(ingest, "trackai_ingestion_webhooks_total", outcome="401") == 1
    assert _value(ingest, "trackai_ingestion_webhook_duration_seconds_count", gateway="kiwify") == 3
    assert _value(ingest, "trackai_ingestion_collect_hits_total", outcome="4xx") == 1
    # `serve` relays its own outbox here (INGESTION_RELAY_IN_SERVE defaults to true).
    # Two messages: the sale to ingest-events and its "received" status to trackai.status.
    assert _value(ingest, "trackai_outbox_messages_total", schema="ingestion") == 2
    assert _value(ingest, "process_cpu_seconds_total") is not None

    matcher = _scrape(stack.procs["matcher-consume"])
    conversions = _value(matcher, "trackai_matcher_conversions_total", tenant_id=tenant_id)
    assert conversions == 1
    assert _value(matcher, "trackai_matcher_emq_count", tenant_id=tenant_id) == 1
    # Two messages: the conversion to capi-dispatch and its "matched" status to trackai.status.
    assert _value(matcher, "trackai_outbox_messages_total", schema="matcher") == 2
    # The sale's message waited in ingest-events once (publish to handling), and not for long.
    assert _value(matcher, "trackai_consumer_lag_seconds_count", queue="ingest-events") == 1
    lag = _value(matcher, "trackai_consumer_lag_seconds_sum", queue="ingest-events")
    assert lag is not None and 0 <= lag < 30

    dispatcher = _scrape(stack.procs["dispatcher-consume"])
    assert _value(dispatcher, "trackai_dispatcher_meta_requests_total", verdict="sent") == 1
    assert _value(dispatcher, "trackai_dispatcher_meta_duration_seconds_count") == 1
    assert _value(dispatcher, "trackai_dispatcher_events_total", state="sent") == 1
    assert _value(dispatcher, "trackai_consumer_lag_seconds_count", queue="capi-dispatch") == 1

    def gauges_measured() -> bool:
        samples = _scrape(stack.procs["dispatcher-consume"])
        return _value(samples, "trackai_dispatcher_dead_events") is not None

    _wait_for(gauges_measured, 30, "the dispatcher's health gauges")
    dispatcher = _scrape(stack.procs["dispatcher-consume"])
    assert _value(dispatcher, "trackai_dispatcher_dead_events") == 0
    assert _value(dispatcher, "trackai_dispatcher_breakers", state="open") == 0

    # The API processes serve theirs too, with nothing personal in any exposition.
    exported: set[str] = set()
    for proc in (provisioner, ingestion, *stack.procs.values()):
        text = httpx.get(proc.http + "/metrics", timeout=10).text
        assert "buyer@example.com" not in text
        assert 'service_name="' in text
        exported |= {sample.name for sample in _scrape(proc)}

    # Every metric the dashboard's panels and the alarms query is one these processes export
    # (or RabbitMQ's plugin: its names are not ours to test here).
    queried = {
        name
        for expr in [*_dashboard_queries(), *_alarm_queries()]
        for name in METRIC_NAME.findall(expr)
    }
    ours = {name for name in queried if not name.startswith("rabbitmq_")}
    assert ours - exported == set()
    assert queried - ours <= RABBITMQ_METRICS


#: Names in a PromQL expression that are metrics (ours, the process collector's, RabbitMQ's).
METRIC_NAME = re.compile(r"\b((?:trackai|process|rabbitmq)_[a-z_]+|target_info)\b")
#: The per-object series of RabbitMQ's rabbitmq_prometheus plugin that the alarms read.
RABBITMQ_METRICS = {
    "rabbitmq_queue_messages",
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_consumers",
}


def _dashboard_queries() -> list[str]:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= len(dashboard["panels"]) > 10
    return exprs


def _alarm_queries() -> list[str]:
    alarms = yaml.safe_load((MONITORING / "alarms.yaml").read_text())["alarms"]
    return [alarm["expr"] for alarm in alarms]
