"""Ingestion's metrics (docs/metrics.md lists every series and its labels).

Monitoring alarms on ``trackai.ingestion.webhooks`` (by outcome): a burst of 401s is someone
probing a tenant's webhook URL or a relay whose key or clock is wrong. Browser hits refused by the
collect endpoint also count in ``trackai.ingestion.collect.refused`` (429s there are a flood from
one address, or a tenant over its ceiling: docs/runbooks/collect.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trackai_kit.telemetry import get_meter

_meter = get_meter("trackai.ingestion")
#: Webhooks refused before storage; attributes ``trackai.webhook.status`` (401, 404, 429),
#: ``trackai.webhook.gateway``, ``trackai.webhook.reason``.
WEBHOOKS_REFUSED = _meter.create_counter(
    "trackai.ingestion.webhooks.refused",
    description="Webhooks refused before storage, by HTTP status, gateway and reason",
)
#: Attribute names of the counter above.
ATTR_STATUS = "trackai.webhook.status"
ATTR_GATEWAY = "trackai.webhook.gateway"
ATTR_REASON = "trackai.webhook.reason"

#: Every webhook answered, by gateway (the receivers' names, ``unknown`` otherwise), ``outcome``
#: (accepted, duplicate, ignored, 401, 4xx, 429, 503) and ``reason`` (the answer's error code).
WEBHOOKS = _meter.create_counter(
    "trackai.ingestion.webhooks",
    unit="{webhook}",
    description="Webhooks answered, by gateway, outcome and reason",
)
#: Time from the request reaching the service layer to its answer (acknowledgement latency).
WEBHOOK_DURATION = _meter.create_histogram(
    "trackai.ingestion.webhook.duration",
    unit="s",
    description="Webhook acknowledgement latency, by gateway",
    explicit_bucket_boundaries_advisory=[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
)
#: Browser hits answered by the collect endpoint, by ``outcome`` (accepted, 4xx, 429, 503).
COLLECT_HITS = _meter.create_counter(
    "trackai.ingestion.collect.hits",
    unit="{hit}",
    description="Browser hits answered by the collect endpoint, by outcome",
)

#: Browser hits answered with anything but 204 (``POST /api/v1/collect/{tenant}``); attributes
#: ``trackai.collect.status`` (400 ... 503) and ``trackai.collect.reason`` (the answer's ``error``
#: code, e.g. ``rate_limited``, ``client_rate_limited``, ``origin_not_allowed``).
COLLECT_REFUSED = _meter.create_counter(
    "trackai.ingestion.collect.refused",
    description="Browser hits refused (not stored), by HTTP status and reason",
)
ATTR_COLLECT_STATUS = "trackai.collect.status"
ATTR_COLLECT_REASON = "trackai.collect.reason"


def webhook_outcome(status: int, body: Mapping[str, Any]) -> tuple[str, str]:
    """The bounded ``outcome`` and ``reason`` labels of one answered webhook."""
    if status == 200:
        if body.get("status") == "ignored":
            # The ignore reasons are free text (a gateway's status names): not a label.
            return "ignored", ""
        return ("duplicate" if body.get("duplicate") else "accepted"), ""
    reason = str(body.get("error", ""))
    if status in (401, 429, 503):
        return str(status), reason
    return ("4xx" if 400 <= status < 500 else "5xx"), reason


def status_outcome(status: int) -> str:
    """``accepted`` for a 2xx, the status for 429 and 503, else its class (4xx, 5xx)."""
    if 200 <= status < 300:
        return "accepted"
    if status in (429, 503):
        return str(status)
    return f"{status // 100}xx"
