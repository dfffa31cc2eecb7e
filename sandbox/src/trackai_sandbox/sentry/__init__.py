"""Faithful local fake of Sentry's ingest endpoint (the envelope protocol) with a ``/_sandbox``
control API listing what arrived: tests assert on what an SDK really sent over HTTP."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from trackai_sandbox.sentry.app import create_app
from trackai_sandbox.sentry.state import Item, SentryState, parse_envelope
from trackai_sandbox.server import BackgroundServer
from trackai_sandbox.settings import SandboxSettings

__all__ = [
    "Item",
    "SentrySink",
    "SentryState",
    "build_app",
    "create_app",
    "dsn",
    "parse_envelope",
]

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


class SentrySink(BackgroundServer):
    """The fake on 127.0.0.1:<ephemeral> for a test or a benchmark, queried over HTTP:
    ``with SentrySink() as sink: ... sentry_sdk.init(dsn=sink.dsn) ... sink.events()``."""

    def __init__(self) -> None:
        super().__init__(create_app())
        self._http: httpx.Client | None = None

    @property
    def dsn(self) -> str:
        return dsn(self.base_url)

    def _client(self) -> httpx.Client:
        if self._http is None:
            raise RuntimeError("the sink is not running (use it as a context manager)")
        return self._http

    def items(self, type: str | None = None) -> list[dict[str, Any]]:
        """Every envelope item received (``type``: only those, e.g. ``"event"``), oldest first."""
        params = {"type": type} if type else {}
        answer = self._client().get("/_sandbox/items", params=params).raise_for_status()
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    def events(self) -> list[dict[str, Any]]:
        """Error events' payloads, oldest first."""
        events: list[dict[str, Any]] = self._client().get("/_sandbox/events").json()["events"]
        return events

    def reset(self) -> None:
        self._client().post("/_sandbox/reset").raise_for_status()

    def start(self) -> SentrySink:
        super().start()
        self._http = httpx.Client(base_url=self.base_url, timeout=10)
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.close()
        super().stop()

    def __enter__(self) -> SentrySink:
        return self.start()
