"""Sandbox settings, read once at start-up from ``SANDBOX_*`` (and ``LOG_*``) variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from trackai_kit.settings import KitSettings, LogSettings


class SandboxSettings(KitSettings):
    """One port per fake; the Meta knobs shape the Graph API fake."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
        env_prefix="SANDBOX_",
    )

    host: str = "127.0.0.1"
    meta_port: int = 8010
    cloudflare_port: int = 8011
    stape_port: int = 8012
    gtm_port: int = 8013
    llm_port: int = 8014
    sentry_port: int = 8015

    #: Comma-separated Graph versions served; older well-formed ones are served as the oldest.
    meta_api_versions: str = "v22.0,v23.0,v24.0,v25.0,v26.0"
    meta_future_tolerance_s: float = 60.0
    meta_seed: int | None = None
    meta_max_recorded_requests: int = 10_000
    meta_max_recorded_events: int = 100_000
    #: Registered at start and after every reset, so ``make run`` works out of the box.
    meta_demo_pixel_id: str = "1234567890"
    # Fake credentials of the fake Meta, published in the README; nothing real.
    meta_demo_token: str = "sandbox-token"  # noqa: S105
    meta_demo_app_id: str = "100000000000001"
    meta_demo_app_secret: str = "sandbox-app-secret"  # noqa: S105

    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    log_json: bool = Field(default=True, alias="LOG_JSON")

    @property
    def log(self) -> LogSettings:
        return LogSettings(level=self.log_level, json_output=self.log_json)
