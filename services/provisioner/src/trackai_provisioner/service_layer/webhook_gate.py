"""The webhook lock (seed STORY-009): a tenant's infrastructure is provisioned and published
only once ingestion holds a verified webhook from one of its gateways, whoever asks (the console,
the agent, or an operator's `trackai provision`), so a setup whose sales would never be recorded
does not go live.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from trackai_provisioner.domain.provisioning import SetupLocked
from trackai_provisioner.domain.tenants import Tenant
from trackai_provisioner.service_layer.ports import WebhookActivityReader

#: How far back ingestion answers (GetWebhookActivity keeps 30 days).
LOOKBACK = timedelta(days=30)


class WebhookGate:
    def __init__(
        self,
        reader: WebhookActivityReader,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._reader = reader
        self._clock = clock

    async def require_verified(self, tenant: Tenant) -> None:
        """Return when a verified webhook from one of the tenant's gateways arrived since the
        tenant was created (at most 30 days back); raise :class:`SetupLocked` saying what to do
        otherwise, and ``DependencyUnavailable`` when ingestion cannot tell (locked: unknown
        is not verified)."""
        gateways = sorted(tenant.configured_gateways)
        if not gateways:
            raise SetupLocked(
                f"tenant {tenant.slug!r} has no gateway credential, so no webhook can be "
                "verified: store one with `trackai tenant set-gateway TENANT --gateway NAME "
                "--secret-file -`, then send a test webhook from that gateway's panel"
            )
        since = max(tenant.created_at, self._clock() - LOOKBACK)
        activity = await self._reader.activity(tenant.id, since)
        if any(a.verified > 0 for a in activity if a.gateway in gateways):
            return
        refused = [
            f"{a.gateway} ({', '.join(sorted(a.refused))})"
            for a in activity
            if a.gateway in gateways and a.refused
        ]
        urls = ", ".join(f"/api/v1/webhooks/{g}/{tenant.id}" for g in gateways)
        detail = (
            f"requests were refused for a credential that did not match: {', '.join(refused)}; "
            "store the gateway's current secret with `trackai tenant set-gateway` and send a "
            "test webhook again"
            if refused
            else "send a test webhook from the gateway's panel to its URL"
        )
        raise SetupLocked(
            f"no verified webhook from tenant {tenant.slug!r}'s gateways since "
            f"{since:%Y-%m-%d %H:%M} UTC: provisioning and publishing stay locked until one "
            f"arrives ({detail}; on ingestion's public address: {urls})"
        )
