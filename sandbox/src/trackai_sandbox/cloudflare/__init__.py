"""Faithful local fake of Cloudflare's API v4 (zones and DNS records) with a ``/_sandbox``
control API: faults, rate limit, and a DNS view other fakes (Stape) resolve against."""

from __future__ import annotations

from fastapi import FastAPI

from trackai_kit.settings import KitSettings
from trackai_sandbox.cloudflare.app import CloudflareConfig, create_app
from trackai_sandbox.cloudflare.state import CloudflareState
from trackai_sandbox.provider_faults import fake_settings_config
from trackai_sandbox.settings import SandboxSettings

__all__ = [
    "CloudflareConfig",
    "CloudflareFakeSettings",
    "CloudflareState",
    "build_app",
    "create_app",
]

#: Published demo credentials of the fake (nothing real): a 40-character token, Cloudflare's shape.
DEMO_TOKEN = "sandbox-cloudflare-token0000000000000000"  # noqa: S105
DEMO_ZONE_ID = "023e105f4ecef8ad9ca31a8372d0c353"


class CloudflareFakeSettings(KitSettings):
    """``SANDBOX_CLOUDFLARE_*``: the demo zone and token, the rate limit, the duplicate code."""

    model_config = fake_settings_config("cloudflare")

    zone_id: str = DEMO_ZONE_ID
    zone_name: str = "trackai.test"
    token: str = DEMO_TOKEN
    account_id: str = "01a7362d577a6c3019a474fd6f485823"
    rate_limit: int = 1200
    rate_window_s: float = 300.0
    identical_record_code: int = 81058


def build_app(settings: SandboxSettings, fake: CloudflareFakeSettings | None = None) -> FastAPI:
    """The fake as the launcher serves it: demo zone and a token that reaches every zone."""
    fake = fake or CloudflareFakeSettings()

    def register_demo(state: CloudflareState) -> None:
        state.add_zone(fake.zone_name, fake.zone_id)
        state.add_token(fake.token, None, "active")

    config = CloudflareConfig(
        account_id=fake.account_id,
        rate_limit=fake.rate_limit,
        rate_window_s=fake.rate_window_s,
        identical_record_code=fake.identical_record_code,
    )
    return create_app(config, bootstrap=register_demo)
