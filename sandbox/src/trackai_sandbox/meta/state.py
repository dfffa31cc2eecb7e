"""In-memory state of the Meta fake: apps, tokens, pixels, injected faults and what was received.

This is a fake of an external system, so memory is the right store: a restart is a fresh Meta.
All mutation happens on the server's event loop, so no locking is needed.
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

TokenState = Literal["valid", "expired", "invalidated"]
TokenType = Literal["USER", "SYSTEM_USER", "PAGE"]
FaultKind = Literal[
    "latency_ms", "http_500", "http_503", "transient", "rate_limit", "token_expired", "timeout"
]


class Clock(Protocol):
    """Source of "now" in Unix seconds; tests inject a fixed or stepping one."""

    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


@dataclass
class ControllableClock:
    """System time, unless a test froze it (``frozen_at``) through the control API."""

    base: Clock = field(default_factory=SystemClock)
    frozen_at: float | None = None

    def now(self) -> float:
        return self.frozen_at if self.frozen_at is not None else self.base.now()


@dataclass
class App:
    app_id: str
    name: str
    secret: str


@dataclass
class Token:
    token: str
    app_id: str
    type: TokenType = "SYSTEM_USER"
    user_id: str = "100000000000002"
    scopes: list[str] = field(default_factory=lambda: ["ads_management", "business_management"])
    #: Unix seconds; 0 means it never expires (system-user tokens).
    expires_at: int = 0
    state: TokenState = "valid"


@dataclass
class Pixel:
    pixel_id: str
    name: str
    tokens: set[str] = field(default_factory=set)
    is_unavailable: bool = False
    last_fired_time: float | None = None


@dataclass
class Fault:
    """An injected failure; applies to ``/events`` posts (of one pixel when ``pixel_id`` is set)."""

    id: int
    kind: FaultKind
    pixel_id: str | None = None
    #: How many more requests it applies to; ``None`` means until cleared.
    remaining: int | None = 1
    probability: float = 1.0
    latency_ms: int = 0
    code: int | None = None
    error_subcode: int | None = None
    #: How long a ``timeout`` fault holds the request (it stops when the client goes away).
    hang_s: float = 30.0
    #: Validate and store the events before failing: Meta got them but the client never heard.
    accept_before: bool = False

    def matches(self, pixel_id: str) -> bool:
        return self.pixel_id is None or self.pixel_id == pixel_id


@dataclass
class RecordedRequest:
    id: int
    received_at: float
    method: str
    path: str
    pixel_id: str | None
    query: dict[str, str]
    body: Any
    status: int = 0
    response: Any = None
    fault: str | None = None
    latency_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "received_at": self.received_at,
            "method": self.method,
            "path": self.path,
            "pixel_id": self.pixel_id,
            "query": self.query,
            "body": self.body,
            "status": self.status,
            "response": self.response,
            "fault": self.fault,
            "latency_ms": round(self.latency_ms, 3),
        }


@dataclass
class AcceptedEvent:
    pixel_id: str
    request_id: int
    received_at: float
    test_event_code: str | None
    partner_agent: str | None
    event: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "pixel_id": self.pixel_id,
            "request_id": self.request_id,
            "received_at": self.received_at,
            "test_event_code": self.test_event_code,
            "partner_agent": self.partner_agent,
            "event": self.event,
        }


class MetaState:
    """Everything the fake knows; ``reset`` brings it back to the configured seed."""

    def __init__(
        self,
        clock: Clock,
        seed: int | None = None,
        max_requests: int = 10_000,
        max_events: int = 100_000,
    ) -> None:
        self.clock = ControllableClock(base=clock)
        self._seed = seed
        self._max_requests = max_requests
        self._max_events = max_events
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        # Not for secrets: a seedable generator keeps fault draws and trace ids reproducible.
        self.rng = random.Random(seed if seed is not None else self._seed)  # noqa: S311
        self.clock.frozen_at = None
        self.apps: dict[str, App] = {}
        self.tokens: dict[str, Token] = {}
        self.pixels: dict[str, Pixel] = {}
        self.faults: list[Fault] = []
        self.global_latency_ms = 0
        self.requests: deque[RecordedRequest] = deque(maxlen=self._max_requests)
        self.events: deque[AcceptedEvent] = deque(maxlen=self._max_events)
        #: Deliveries per (pixel, event_name, event_id): >1 means Meta saw a duplicate.
        self.event_counts: Counter[tuple[str, str, str]] = Counter()
        self._next_request_id = 1
        self._next_fault_id = 1

    # --- registry -------------------------------------------------------------------------
    def register_app(self, app_id: str, name: str, secret: str) -> App:
        app = App(app_id=app_id, name=name, secret=secret)
        self.apps[app_id] = app
        return app

    def register_token(self, token: Token) -> Token:
        self.tokens[token.token] = token
        return token

    def register_pixel(self, pixel_id: str, name: str, tokens: list[str]) -> Pixel:
        pixel = self.pixels.get(pixel_id) or Pixel(pixel_id=pixel_id, name=name)
        pixel.name = name
        pixel.tokens.update(tokens)
        self.pixels[pixel_id] = pixel
        return pixel

    # --- faults ---------------------------------------------------------------------------
    def add_fault(self, **spec: Any) -> Fault:
        fault = Fault(id=self._next_fault_id, **spec)
        self._next_fault_id += 1
        self.faults.append(fault)
        return fault

    def take_faults(self, pixel_id: str) -> list[Fault]:
        """Faults that fire for this request, consuming one use of each.

        Every matching latency fault adds up; of the failures, only the oldest fires (a request
        fails one way), so queued failures play out one request after another.
        """
        fired: list[Fault] = []
        failing = False
        for fault in list(self.faults):
            if not fault.matches(pixel_id) or (failing and fault.kind != "latency_ms"):
                continue
            if self.rng.random() >= fault.probability:
                continue
            failing = failing or fault.kind != "latency_ms"
            fired.append(fault)
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
        return fired

    # --- recording ------------------------------------------------------------------------
    def record_request(
        self, method: str, path: str, pixel_id: str | None, query: dict[str, str], body: Any
    ) -> RecordedRequest:
        record = RecordedRequest(
            id=self._next_request_id,
            received_at=self.clock.now(),
            method=method,
            path=path,
            pixel_id=pixel_id,
            query=query,
            body=body,
        )
        self._next_request_id += 1
        self.requests.append(record)
        return record

    def accept_events(
        self,
        pixel: Pixel,
        request_id: int,
        events: list[dict[str, Any]],
        test_event_code: str | None,
        partner_agent: str | None,
    ) -> None:
        now = self.clock.now()
        for event in events:
            self.events.append(
                AcceptedEvent(
                    pixel.pixel_id, request_id, now, test_event_code, partner_agent, event
                )
            )
            event_id = event.get("event_id")
            key = (
                pixel.pixel_id,
                str(event["event_name"]),
                "" if event_id is None else str(event_id),
            )
            self.event_counts[key] += 1
        pixel.last_fired_time = now
