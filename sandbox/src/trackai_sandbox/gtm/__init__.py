"""Faithful local fake of the Google Tag Manager API v2 with a ``/_sandbox`` control API: request
quota per project, bad tokens, gallery templates, faults and a listing of what exists."""

from __future__ import annotations

from fastapi import FastAPI

from trackai_kit.settings import KitSettings
from trackai_sandbox.gtm.app import GtmConfig, create_app
from trackai_sandbox.gtm.state import GalleryTemplate, GtmState
from trackai_sandbox.provider_faults import fake_settings_config
from trackai_sandbox.settings import SandboxSettings

__all__ = ["GtmConfig", "GtmFakeSettings", "GtmState", "build_app", "create_app"]

DEMO_ACCOUNT_ID = "6000000001"
#: Any non-empty bearer token is accepted except this one (and those marked invalid).
BAD_TOKEN = "sandbox-gtm-bad-token"  # noqa: S105 - the fake's published "revoked" credential

#: Templates the fake's Community Template Gallery serves (owner, repository, name, context).
DEFAULT_GALLERY = (
    ("stape-io", "facebook-tag", "Facebook Conversions API", "server"),
    ("stape-io", "fb-tag", "Facebook Pixel by Stape", "web"),
    (
        "facebookarchive",
        "GoogleTagManager-WebTemplate-For-FacebookPixel",
        "Facebook Pixel",
        "web",
    ),
)


class GtmFakeSettings(KitSettings):
    """``SANDBOX_GTM_*``: quota, rate-limit answer, demo account."""

    model_config = fake_settings_config("gtm")

    account_id: str = DEMO_ACCOUNT_ID
    account_name: str = "Track AI Sandbox"
    qps: float = 0.25
    window_s: float = 60.0
    per_day: int = 10_000
    rate_limit_status: int = 429
    page_size: int = 100
    max_workspaces: int = 3


def build_app(settings: SandboxSettings, fake: GtmFakeSettings | None = None) -> FastAPI:
    """The fake as the launcher serves it: the demo account and the default gallery."""
    fake = fake or GtmFakeSettings()

    def register_demo(state: GtmState) -> None:
        state.add_account(fake.account_id, fake.account_name)
        state.invalid_tokens.add(BAD_TOKEN)
        for owner, repository, name, context in DEFAULT_GALLERY:
            state.gallery[(owner, repository)] = GalleryTemplate(owner, repository, name, context)

    config = GtmConfig(
        qps=fake.qps,
        window_s=fake.window_s,
        per_day=fake.per_day,
        rate_limit_status=fake.rate_limit_status,
        page_size=fake.page_size,
        max_workspaces=fake.max_workspaces,
    )
    return create_app(config, bootstrap=register_demo)
