"""Ingestion's metrics.

Monitoring alarms on ``trackai.ingestion.webhooks.refused`` (by status and reason): a burst of 401s
is someone probing a tenant's webhook URL or a relay whose key or clock is wrong.
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
