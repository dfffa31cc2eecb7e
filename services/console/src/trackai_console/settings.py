"""Settings of the console service: the kit's blocks plus its own ``CONSOLE_*`` knobs."""

from __future__ import annotations

from pydantic import Field

from trackai_kit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("console")

    service_name: str = "console"
    #: The address browsers use to reach the console; one-time password links start with it.
    public_url: str = "http://127.0.0.1:8000"
    #: How long a sign-in lasts.
    session_hours: float = Field(12.0, gt=0)
    #: Validity of a password-reset link, and of an invitation's link.
    password_link_minutes: float = Field(60.0, gt=0)
    invite_hours: float = Field(72.0, gt=0)
    #: Failed sign-ins allowed per e-mail and per client address within the window.
    login_max_failures: int = Field(5, ge=1)
    login_max_failures_per_address: int = Field(20, ge=1)
    login_window_minutes: float = Field(15.0, gt=0)

    #: The read APIs every page is built from (the chart sets each to its in-cluster address).
    ingestion_target: str = Field("127.0.0.1:50051", alias="INGESTION_GRPC_TARGET")
    matcher_target: str = Field("127.0.0.1:50052", alias="MATCHER_GRPC_TARGET")
    dispatcher_target: str = Field("127.0.0.1:50053", alias="DISPATCHER_GRPC_TARGET")
    provisioner_target: str = Field("127.0.0.1:50054", alias="PROVISIONER_GRPC_TARGET")
    #: The setup assistant (chat panel, escalation queue) and the setup wizard's checks (RunCheck).
    agent_target: str = Field("127.0.0.1:50055", alias="AGENT_GRPC_TARGET")
    #: Seconds a page waits for one read call.
    grpc_timeout_s: float = Field(5.0, gt=0)
    #: Seconds between two copies of every tenant's EMQ figures into ``console.emq_daily``.
    emq_snapshot_s: float = Field(600.0, gt=0)
    #: Seconds one assistant turn may take (tools, language model) before the panel gives up.
    agent_turn_timeout_s: float = Field(120.0, gt=0)

    #: Redis holding each tenant's live-update history, shared by every replica so a browser
    #: resumes (Last-Event-ID) on whichever one it reconnects to (while it is away: live-only).
    redis_url: str = Field("redis://127.0.0.1:6379/0", alias="REDIS_URL")
    #: Updates kept per tenant for resuming, and hours a quiet tenant's history is kept.
    live_history: int = Field(500, ge=1)
    live_history_hours: float = Field(24.0, gt=0)

    @property
    def secure_cookies(self) -> bool:
        """Cookies are Secure (HTTPS only) everywhere but the local sandbox and tests over HTTP."""
        return self.environment not in ("local", "test")
