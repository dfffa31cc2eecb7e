"""Fault injection and request recording shared by the provisioning fakes (Cloudflare, Stape, GTM).

An ASGI middleware sits in front of each fake's API routes: it records every call (method, path,
query, status; never headers or bodies, which carry credentials) and plays injected faults
(latency, 5xx in the provider's own envelope, a hung request, or "done but the answer was lost").
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FaultKind = Literal["latency", "http_500", "http_502", "http_503", "timeout"]

#: ``render(status) -> (content type, body)``: a 5xx as this provider's edge answers it.
ErrorRenderer = Callable[[int], tuple[str, bytes]]

CONTROL_PREFIX = "/_sandbox/"
_STATUS_OF: dict[str, int] = {"http_500": 500, "http_502": 502, "http_503": 503, "timeout": 504}


@dataclass
class Fault:
    """One injected failure; it applies to calls whose method and path match."""

    id: int
    kind: FaultKind
    #: Only calls with this HTTP method (any when None).
    method: str | None = None
    #: Only calls whose path contains this text (any when None).
    path: str | None = None
    #: Calls it still applies to; None means until cleared.
    remaining: int | None = 1
    latency_ms: int = 0
    #: How long a ``timeout`` holds the call (released as soon as the client goes away).
    hang_s: float = 30.0
    #: Let the call take effect, then fail: the provider did it, the client never heard.
    after: bool = False

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and (
            self.path is None or self.path in path
        )


class FaultIn(BaseModel):
    kind: FaultKind
    method: str | None = None
    path: str | None = None
    count: int | None = Field(1, ge=1)
    latency_ms: int = Field(0, ge=0)
    hang_s: float = Field(30.0, gt=0)
    after: bool = False


class LatencyIn(BaseModel):
    ms: int = Field(ge=0)


@dataclass
class RecordedCall:
    id: int
    received_at: float
    method: str
    path: str
    query: str
    status: int = 0
    fault: str | None = None
    latency_ms: float = 0.0


class FaultBook:
    """Queued faults, a global latency and the calls received, for one fake."""

    def __init__(self, max_recorded: int = 10_000) -> None:
        self.faults: list[Fault] = []
        self.latency_ms = 0
        self.calls: deque[RecordedCall] = deque(maxlen=max_recorded)
        self._next_fault = 1
        self._next_call = 1

    def clear(self) -> None:
        self.faults.clear()
        self.latency_ms = 0
        self.calls.clear()

    def add(self, spec: FaultIn) -> Fault:
        fault = Fault(
            id=self._next_fault,
            kind=spec.kind,
            method=spec.method,
            path=spec.path,
            remaining=spec.count,
            latency_ms=spec.latency_ms,
            hang_s=spec.hang_s,
            after=spec.after,
        )
        self._next_fault += 1
        self.faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> list[Fault]:
        """Faults firing for this call, each losing one use; only the oldest failure fires."""
        fired: list[Fault] = []
        failing = False
        for fault in list(self.faults):
            if not fault.matches(method, path) or (failing and fault.kind != "latency"):
                continue
            failing = failing or fault.kind != "latency"
            fired.append(fault)
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
        return fired

    def record(self, method: str, path: str, query: str) -> RecordedCall:
        call = RecordedCall(self._next_call, time.time(), method, path, query)
        self._next_call += 1
        self.calls.append(call)
        return call


async def _hang(receive: Receive, seconds: float) -> None:
    """Hold the call like an overloaded upstream until the client disconnects or time runs out."""

    async def until_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(until_disconnect(), seconds)


class FaultMiddleware:
    """Records and disturbs every call outside ``/_sandbox/``."""

    def __init__(self, app: ASGIApp, book: FaultBook, render: ErrorRenderer) -> None:
        self.app = app
        self.book = book
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]
        call = self.book.record(method, path, scope.get("query_string", b"").decode("latin-1"))
        fired = self.book.take(method, path)
        delay = self.book.latency_ms + sum(f.latency_ms for f in fired if f.kind == "latency")
        if delay:
            await asyncio.sleep(delay / 1000)
        failure = next((f for f in fired if f.kind != "latency"), None)
        call.fault = failure.kind if failure else None

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                call.status = message["status"]
            await send(message)

        if failure is None:
            await self.app(scope, receive, recording_send)
        else:
            if failure.after:
                await self.app(scope, receive, _discard)
            if failure.kind == "timeout":
                await _hang(receive, failure.hang_s)
            await self._fail(_STATUS_OF[failure.kind], recording_send)
        call.latency_ms = (time.perf_counter() - started) * 1000

    async def _fail(self, status: int, send: Send) -> None:
        content_type, body = self.render(status)
        headers = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(body))]
        with contextlib.suppress(OSError):
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})


async def _discard(message: Message) -> None:
    """The answer the client never got."""


def add_common_routes(app: FastAPI, book: FaultBook, reset: Callable[[], None]) -> None:
    """``/_sandbox/`` health, reset, faults, latency and recorded calls."""

    @app.get("/_sandbox/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/_sandbox/reset")
    async def reset_all() -> dict[str, str]:
        book.clear()
        reset()
        return {"status": "reset"}

    @app.post("/_sandbox/faults")
    async def add_fault(body: FaultIn) -> dict[str, Any]:
        return asdict(book.add(body))

    @app.get("/_sandbox/faults")
    async def list_faults() -> dict[str, Any]:
        return {"data": [asdict(f) for f in book.faults], "latency_ms": book.latency_ms}

    @app.delete("/_sandbox/faults")
    async def clear_faults() -> dict[str, Any]:
        book.faults.clear()
        book.latency_ms = 0
        return {"data": []}

    @app.post("/_sandbox/latency")
    async def set_latency(body: LatencyIn) -> dict[str, int]:
        book.latency_ms = body.ms
        return {"latency_ms": body.ms}

    @app.get("/_sandbox/requests")
    async def list_calls(method: str | None = None, path: str | None = None) -> dict[str, Any]:
        rows = [
            asdict(c)
            for c in book.calls
            if (method is None or c.method == method.upper()) and (path is None or path in c.path)
        ]
        return {"data": rows, "total": len(rows)}


def fake_settings_config(fake: str) -> SettingsConfigDict:
    """Settings of one fake read ``SANDBOX_<FAKE>_*`` (and a local ``.env``)."""
    return SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        env_prefix=f"SANDBOX_{fake.upper()}_",
    )


def fake_app(
    title: str, book: FaultBook, reset: Callable[[], None], render: ErrorRenderer
) -> FastAPI:
    """A provider fake's app: its docs under ``/_sandbox``, the common control routes and the
    fault middleware; the caller adds the provider's routes."""
    app = FastAPI(
        title=f"Track AI sandbox: {title}",
        docs_url="/_sandbox/docs",
        openapi_url="/_sandbox/openapi.json",
        redoc_url=None,
    )
    app.state.faults = book
    add_common_routes(app, book, reset)
    app.add_middleware(FaultMiddleware, book=book, render=render)
    return app
