"""Faithful local fake of Meta's Graph API: Conversions API ``/events``, ``debug_token`` and pixel
lookup, with a ``/_sandbox`` control API for tests (faults, latency, clock, recordings)."""

from __future__ import annotations

from fastapi import FastAPI

from trackai_sandbox.meta.app import MetaConfig, create_app
from trackai_sandbox.meta.state import MetaState, Token
from trackai_sandbox.settings import SandboxSettings

__all__ = ["MetaConfig", "MetaState", "build_app", "create_app"]


def build_app(settings: SandboxSettings) -> FastAPI:
    """The fake as the launcher serves it, with the demo app, pixel and token registered."""

    def register_demo(state: MetaState) -> None:
        state.register_app(
            settings.meta_demo_app_id, "Track AI Sandbox", settings.meta_demo_app_secret
        )
        state.register_token(
            Token(token=settings.meta_demo_token, app_id=settings.meta_demo_app_id)
        )
        state.register_pixel(
            settings.meta_demo_pixel_id, "Track AI demo pixel", [settings.meta_demo_token]
        )

    config = MetaConfig(
        api_versions=tuple(v.strip() for v in settings.meta_api_versions.split(",") if v.strip()),
        future_tolerance_s=settings.meta_future_tolerance_s,
        seed=settings.meta_seed,
        max_recorded_requests=settings.meta_max_recorded_requests,
        max_recorded_events=settings.meta_max_recorded_events,
    )
    return create_app(config, bootstrap=register_demo)
