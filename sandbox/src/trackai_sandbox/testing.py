"""Test support for any suite that talks to the sandbox: a typed control client and a sample
event that Meta accepts. Start the fake with :class:`trackai_sandbox.server.BackgroundServer`."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import httpx

DEMO_PIXEL_ID = "1234567890"
DEMO_TOKEN = "sandbox-token"  # noqa: S105 - the sandbox's published demo credential
DEMO_APP_TOKEN = "100000000000001|sandbox-app-secret"  # noqa: S105 - same


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def sample_purchase(now: int, **overrides: Any) -> dict[str, Any]:
    """A website Purchase that Meta accepts; an override of ``None`` drops the field."""
    event: dict[str, Any] = {
        "event_name": "Purchase",
        "event_time": now - 60,
        "event_id": "order-1",
        "action_source": "website",
        "event_source_url": "https://shop.example/thanks",
        "user_data": {
            "em": [sha256_hex("buyer@example.com")],
            "ph": [sha256_hex("5511999998888")],
            "client_ip_address": "203.0.113.7",
            "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
            "fbc": f"fb.1.{(now - 1000) * 1000}.IwAR2xYzAbC",
            "fbp": f"fb.1.{(now - 1000) * 1000}.1234567890",
        },
        "custom_data": {"value": 129.9, "currency": "BRL"},
    }
    for key, value in copy.deepcopy(overrides).items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return event


class MetaSandboxClient:
    """The ``/_sandbox`` control API plus a Graph ``/events`` post, over one httpx client."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.http.request(method, path, **kwargs)
        answer.raise_for_status()
        return answer.json()

    def reset(self, seed: int | None = None) -> None:
        self._call("POST", "/_sandbox/reset", json={"seed": seed})

    def freeze_clock(self, now: float | None) -> None:
        self._call("POST", "/_sandbox/clock", json={"now": now})

    def register_pixel(self, pixel_id: str, token: str, **fields: Any) -> None:
        self._call(
            "POST", "/_sandbox/pixels", json={"pixel_id": pixel_id, "token": token, **fields}
        )

    def register_token(self, token: str, **fields: Any) -> None:
        self._call("POST", "/_sandbox/tokens", json={"token": token, **fields})

    def add_fault(self, kind: str, **fields: Any) -> dict[str, Any]:
        fault: dict[str, Any] = self._call(
            "POST", "/_sandbox/faults", json={"kind": kind, **fields}
        )
        return fault

    def set_latency(self, ms: int) -> None:
        self._call("POST", "/_sandbox/latency", json={"ms": ms})

    def events(self, **filters: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._call("GET", "/_sandbox/events", params=filters)["data"]
        return rows

    def requests(self, **filters: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._call("GET", "/_sandbox/requests", params=filters)["data"]
        return rows

    def event_counts(self, **filters: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._call("GET", "/_sandbox/event-counts", params=filters)[
            "data"
        ]
        return rows

    def post_events(
        self,
        events: list[dict[str, Any]],
        pixel_id: str = DEMO_PIXEL_ID,
        token: str | None = DEMO_TOKEN,
        version: str = "v25.0",
        **params: Any,
    ) -> httpx.Response:
        query = {"access_token": token} if token else {}
        return self.http.post(
            f"/{version}/{pixel_id}/events", params=query, json={"data": events, **params}
        )
