"""Ingestion's metrics.

Monitoring alarms on ``trackai.ingestion.webhooks.refused`` (by status and reason): a burst of 401s
is someone probing a tenant's webhook URL or a relay whose key or clock is wrong. Browser hits
refused by the collect endpoint count in ``trackai.ingestion.collect.refused`` (429s there are a
flood from one address, or a tenant over its ceiling: docs/runbooks/collect.md).
"""

from __future__ import annotations

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

#: Browser hits answered with anything but 204 (``POST /api/v1/collect/{tenant}``); attributes
#: ``trackai.collect.status`` (400 ... 503) and ``trackai.collect.reason`` (the answer's ``error``
#: code, e.g. ``rate_limited``, ``client_rate_limited``, ``origin_not_allowed``).
COLLECT_REFUSED = _meter.create_counter(
    "trackai.ingestion.collect.refused",
    description="Browser hits refused (not stored), by HTTP status and reason",
)
ATTR_COLLECT_STATUS = "trackai.collect.status"
ATTR_COLLECT_REASON = "trackai.collect.reason"
