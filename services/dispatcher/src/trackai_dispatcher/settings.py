"""Settings of the dispatcher service: the kit's blocks plus its own ``DISPATCHER_*`` knobs."""

from __future__ import annotations

from pydantic import Field, field_validator

from trackai_kit.settings import ServiceSettings, service_config
from trackai_kit.topology import CAPI_RETRY_DELAYS_MS

#: AMQP's prefetch count is an unsigned short.
MAX_PREFETCH = 65535


class Settings(ServiceSettings):
    model_config = service_config("dispatcher")

    https_only_fields = ("meta_graph_url",)

    service_name: str = "dispatcher"
    #: Where events go: the Graph API, or the sandbox fake in local runs and tests.
    meta_graph_url: str = Field("https://graph.facebook.com", alias="META_GRAPH_URL")
    meta_api_version: str = Field("v25.0", alias="META_API_VERSION")
    #: Client timeout per Meta request, seconds (Meta recommends 1.5 s).
    meta_timeout_s: float = Field(1.5, alias="META_TIMEOUT_S")
    batch_max: int = Field(1000, ge=1, le=1000)
    batch_deadline_ms: int = Field(200, ge=1)
    #: Batches posted to Meta at the same time by one consumer process.
    concurrency: int = Field(4, ge=1)
    #: Unacknowledged deliveries the broker may hand this consumer; 0 = (2 x concurrency + 1) x
    #: batch_max: a full batch in every POST slot, as many being stored or committed around
    #: them, and the next one filling.
    prefetch: int = Field(0, ge=0, le=MAX_PREFETCH)
    #: The retry ladder, milliseconds; each delay is a `capi-dispatch.retry.<ms>` TTL queue.
    retry_delays_ms: str = ",".join(str(d) for d in CAPI_RETRY_DELAYS_MS)
    #: Consecutive failures that open a destination's breaker, and its cool-down before a probe.
    breaker_threshold: int = Field(10, ge=1)
    breaker_cooldown_s: float = Field(30.0, gt=0)
    #: How long a batch holds its events against a concurrent copy (covers its POSTs and splits).
    claim_lease_s: float = Field(60.0, gt=0)
    #: On SIGTERM, time left to finish in-flight batches before the rest is handed back.
    shutdown_grace_s: float = Field(8.0, ge=0)
    #: Meta-wide outage: this many destinations failing on Meta's side within the window.
    outage_destinations: int = Field(3, ge=1)
    outage_window_s: float = Field(60.0, gt=0)
    #: Retention (LGPD), in days: attempt rows (the POST audit trail), and the raw IP and user
    #: agent inside stored events (blanked once past Meta's 7-day window, when no send or replay
    #: can use them any more).
    attempt_retention_days: int = Field(30, ge=1)
    raw_network_retention_days: int = Field(8, ge=8)
    #: Version sent as `partner_agent` (`trackai-<version>`).
    partner_agent: str = "trackai-0.1.0"
    provisioner_target: str = Field("127.0.0.1:50054", alias="PROVISIONER_GRPC_TARGET")

    @field_validator("retry_delays_ms")
    @classmethod
    def _ladder(cls, value: str) -> str:
        delays = [int(part) for part in value.split(",") if part.strip()]
        if not delays or any(d <= 0 for d in delays):
            raise ValueError("DISPATCHER_RETRY_DELAYS_MS needs positive millisecond delays")
        return ",".join(str(d) for d in delays)

    @property
    def retry_ladder_ms(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.retry_delays_ms.split(","))

    @property
    def park_delay_ms(self) -> int:
        """The delay queue parked events wait in: the breaker's cool-down."""
        return int(self.breaker_cooldown_s * 1000)

    @property
    def pipeline(self) -> int:
        """Batches in progress at once: ``concurrency`` posting, as many storing or committing."""
        return 2 * self.concurrency

    @property
    def effective_prefetch(self) -> int:
        return self.prefetch or min(MAX_PREFETCH, (self.pipeline + 1) * self.batch_max)
