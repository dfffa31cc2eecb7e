"""Faithful local fake of Sentry's ingest endpoint (the envelope protocol) with a ``/_sandbox``
control API listing what arrived: tests assert on what an SDK really sent over HTTP."""

from __future__ import annotations

from fastapi import FastAPI

from trackai_sandbox.sentry.app import create_app
from trackai_sandbox.sentry.state import Item, SentryState, parse_envelope
from trackai_sandbox.settings import SandboxSettings

__all__ = ["Item", "SentryState", "build_app", "create_app", "dsn", "parse_envelope"]

#: The project id and public key of the DSN the fake's README publishes (any key is accepted).
DEMO_PROJECT_ID = "1"
DEMO_PUBLIC_KEY = "sandbox"


def dsn(base_url: str, *, key: str = DEMO_PUBLIC_KEY, project_id: str = DEMO_PROJECT_ID) -> str:
    """The DSN that points an SDK at the fake served at ``base_url`` (``http://host:port``)."""
    scheme, _, host = base_url.partition("://")
    return f"{scheme}://{key}@{host}/{project_id}"


def build_app(settings: SandboxSettings) -> FastAPI:
    del settings  # the fake has no knobs beyond its port
    return create_app()
