"""Settings of the ingestion service: the kit's blocks plus its own ``INGESTION_*`` knobs."""

from __future__ import annotations

from pydantic import Field

from trackai_ingestion.service_layer.collect_limits import (
    DEFAULT_CLIENT_LIMIT_PER_MINUTE,
    DEFAULT_TENANT_LIMIT_PER_MINUTE,
)
from trackai_kit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("ingestion")

    service_name: str = "ingestion"
    #: Default per-tenant webhook rate limit (requests per minute); tenants may override it.
    rate_limit_per_minute: int = Field(100, alias="INGESTION_RATE_LIMIT_PER_MINUTE", ge=1)
    #: Shared limiter state across replicas.
    redis_url: str = Field("redis://127.0.0.1:6379/0", alias="REDIS_URL")
    provisioner_target: str = Field("127.0.0.1:50054", alias="PROVISIONER_GRPC_TARGET")
    #: Comma-separated CIDRs of the proxies (ingress, load balancer) whose X-Forwarded-For is
    #: believed by the collect endpoint; empty: the TCP peer is the client.
    trusted_proxies: str = Field("", alias="INGESTION_TRUSTED_PROXIES")

    @property
    def trusted_proxy_networks(self) -> list[str]:
        return [cidr.strip() for cidr in self.trusted_proxies.split(",") if cidr.strip()]

    #: Webhook ingress limits (docs/runbooks/webhooks.md): the largest body read (gateways send a
    #: few KB; 128 KiB leaves ample room), how long a client may take to send it, how many
    #: webhooks are handled at once before the next ones get 503 + Retry-After, and how long a
    #: webhook waits for a database connection before it gets 503.
    webhook_max_body_bytes: int = Field(128 * 1024, ge=1024, le=1024 * 1024)
    webhook_body_timeout_s: float = Field(10.0, gt=0, le=120)
    webhook_max_in_flight: int = Field(64, ge=1, le=10_000)
    db_acquire_timeout_s: float = Field(5.0, gt=0, le=60)
    #: Webhooks for unknown tenants one source IP may get answered per minute; beyond it, that
    #: source is served only tenants already cached (429 for the rest), so made-up tenant ids
    #: cannot keep the registry busy nor churn the tenant-config cache.
    unknown_tenant_limit_per_minute: int = Field(30, ge=1)
    #: Browser hits per minute (docs/runbooks/collect.md): from one client address (IPv4, or an
    #: IPv6 /64) to one tenant, and to one tenant from everyone. A landing page sends ~5 hits per
    #: visitor: 300 is 60 visitors a minute behind one address (office, CGNAT), 6,000 a spike of
    #: 1,200 visitors a minute. 429 + Retry-After beyond; 0 turns a ceiling off.
    collect_ip_rate_limit_per_minute: int = Field(DEFAULT_CLIENT_LIMIT_PER_MINUTE, ge=0)
    collect_tenant_rate_limit_per_minute: int = Field(DEFAULT_TENANT_LIMIT_PER_MINUTE, ge=0)
    #: Seconds a relay's timestamped `X-Signature: t=...,v1=...` stays valid, either side of now.
    relay_signature_tolerance_s: float = Field(300.0, gt=0, le=3600)
    #: Also accept the untimestamped `X-Signature: sha256=<hex>` (replayable forever): only while
    #: relays migrate to the timestamped form.
    legacy_relay_signature: bool = False

    #: How often the outbox relay looks for new rows when idle (seconds): the upper bound of
    #: the publish delay, since ingestion's outbox does not NOTIFY (see the 0700 migration).
    relay_poll_interval_s: float = Field(0.1, gt=0, le=5)
    #: Run the outbox relay inside `serve` (simplest). Production runs it as its own `relay`
    #: process and sets this to false, so publishing never delays webhook acknowledgements.
    relay_in_serve: bool = True
    #: Retention (LGPD, docs/runbooks/retention.md), in days, swept hourly by the process that
    #: runs the relay: webhook receipts, published outbox rows, and the raw IP and user agent
    #: of stored events (blanked).
    receipt_retention_days: int = Field(30, ge=1)
    outbox_retention_days: int = Field(7, ge=1)
    raw_network_retention_days: int = Field(30, ge=1)
