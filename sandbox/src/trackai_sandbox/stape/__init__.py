"""Faithful local fake of Stape's API v2 (containers and custom domains, global and EU regions)
with a ``/_sandbox`` control API: deploy delay, a container that never runs, DNS, faults."""

from __future__ import annotations

from fastapi import FastAPI

from trackai_kit.settings import KitSettings
from trackai_sandbox.provider_faults import fake_settings_config
from trackai_sandbox.settings import SandboxSettings
from trackai_sandbox.stape.app import create_app
from trackai_sandbox.stape.state import ANONYMIZE_KEYS, Behaviour, StapeState

__all__ = [
    "ANONYMIZE_KEYS",
    "Behaviour",
    "StapeFakeSettings",
    "StapeState",
    "build_app",
    "create_app",
]

#: Published demo keys of the fake (nothing real), one per region.
DEMO_KEY = "sandbox-stape-key"
DEMO_EU_KEY = "sandbox-stape-eu-key"


class StapeFakeSettings(KitSettings):
    """``SANDBOX_STAPE_*``: demo keys, deploy timing and where the Cloudflare fake's DNS is."""

    model_config = fake_settings_config("stape")

    key: str = DEMO_KEY
    eu_key: str = DEMO_EU_KEY
    ready_after_s: float = 5.0
    never_running: bool = False
    verify_delay_s: float = 0.0
    pending_status: str = "deploying"
    running_status: str = "running"
    #: The Cloudflare fake whose DNS view revalidation reads; default: this launcher's one.
    dns_resolver_url: str | None = None


def build_app(settings: SandboxSettings, fake: StapeFakeSettings | None = None) -> FastAPI:
    """The fake as the launcher serves it, with one demo key per region."""
    fake = fake or StapeFakeSettings()

    def register_demo(state: StapeState) -> None:
        state.keys[fake.key] = "global"
        state.keys[fake.eu_key] = "eu"

    behaviour = Behaviour(
        ready_after_s=fake.ready_after_s,
        never_running=fake.never_running,
        verify_delay_s=fake.verify_delay_s,
        pending_status=fake.pending_status,
        running_status=fake.running_status,
    )
    resolver = fake.dns_resolver_url or f"http://127.0.0.1:{settings.cloudflare_port}"
    return create_app(behaviour, resolver, bootstrap=register_demo)
