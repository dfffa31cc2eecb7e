"""The Meta fake as a FastAPI app: Graph API routes plus the ``/_sandbox`` control API.

Graph routes reproduce ``POST /{v}/{pixel}/events``, ``GET /{v}/debug_token`` and
``GET /{v}/{pixel}``; anything else answers Graph's "Unknown path components" error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from trackai_sandbox.meta.errors import (
    GraphError,
    bad_request_param,
    expired_token,
    invalidated_token,
    missing_token,
    new_fbtrace_id,
    object_not_found,
    unknown_path,
    unparseable_token,
)
from trackai_sandbox.meta.state import (
    Clock,
    Fault,
    FaultKind,
    MetaState,
    Pixel,
    SystemClock,
    Token,
    TokenState,
    TokenType,
)
from trackai_sandbox.meta.validation import decode_event, parse_data, validate_events

logger = logging.getLogger("trackai_sandbox.meta")

_VERSION = re.compile(r"v(\d+)\.(\d+)")
_PIXEL_FIELDS = ("id", "name", "last_fired_time", "is_unavailable", "creation_time")
_RATE_LIMIT_MESSAGES = {
    4: "(#4) Application request limit reached",
    17: "(#17) User request limit reached",
    341: "(#341) Application limit reached",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    80004: "(#80004) There have been too many calls to this ad-account. Wait a bit and try again.",
}
_HTML_503 = (
    "<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
    "<body><h1>Sorry, something went wrong.</h1><p>We're working on it.</p></body></html>"
)


@dataclass(frozen=True)
class MetaConfig:
    """Behaviour knobs of the fake (the launcher fills them from ``SANDBOX_META_*``)."""

    api_versions: tuple[str, ...] = ("v22.0", "v23.0", "v24.0", "v25.0", "v26.0")
    future_tolerance_s: float = 60.0
    seed: int | None = None
    max_recorded_requests: int = 10_000
    max_recorded_events: int = 100_000


# --- control API bodies --------------------------------------------------------------------
class AppIn(BaseModel):
    app_id: str
    name: str = "Track AI Sandbox"
    secret: str


class TokenIn(BaseModel):
    token: str
    app_id: str | None = None
    type: TokenType = "SYSTEM_USER"
    user_id: str = "100000000000002"
    scopes: list[str] = Field(default_factory=lambda: ["ads_management", "business_management"])
    expires_at: int = 0
    state: TokenState = "valid"
    pixel_ids: list[str] = Field(default_factory=list)


class PixelIn(BaseModel):
    pixel_id: str = Field(pattern=r"^\d+$")
    name: str | None = None
    token: str | None = None
    tokens: list[str] = Field(default_factory=list)
    token_type: TokenType = "SYSTEM_USER"  # noqa: S105 - a token kind, not a secret
    scopes: list[str] = Field(default_factory=lambda: ["ads_management", "business_management"])
    expires_at: int = 0
    app_id: str | None = None
    is_unavailable: bool = False


class FaultIn(BaseModel):
    kind: FaultKind
    pixel_id: str | None = None
    #: Requests it applies to; null = until ``DELETE /_sandbox/faults``.
    count: int | None = Field(1, ge=1)
    probability: float = Field(1.0, ge=0.0, le=1.0)
    latency_ms: int = Field(0, ge=0)
    code: int | None = None
    error_subcode: int | None = None
    hang_s: float = Field(30.0, gt=0)
    accept_before: bool = False


class LatencyIn(BaseModel):
    ms: int = Field(ge=0)


class ClockIn(BaseModel):
    #: Unix seconds to freeze the fake's clock at; null returns to the system clock.
    now: float | None


class ResetIn(BaseModel):
    seed: int | None = None


def _http_date(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%A, %d-%b-%y %H:%M:%S UTC")


def _graph_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


class MetaGraph:
    """Request handling, separated from routing so it can be read top to bottom."""

    def __init__(self, state: MetaState, config: MetaConfig) -> None:
        self.state = state
        self.config = config
        parsed = sorted(
            (int(m[1]), int(m[2])) for v in config.api_versions if (m := _VERSION.fullmatch(v))
        )
        self._oldest, self._newest = parsed[0], parsed[-1]

    # --- helpers --------------------------------------------------------------------------
    def effective_version(self, version: str, rest: str) -> str:
        """Graph serves expired versions as the oldest live one; unknown ones are bad paths."""
        match = _VERSION.fullmatch(version)
        if match is None:
            raise unknown_path(f"/{version}/{rest}".rstrip("/"))
        wanted = (int(match[1]), int(match[2]))
        if wanted > self._newest:
            raise unknown_path(f"/{version}/{rest}".rstrip("/"))
        if wanted < self._oldest:
            return f"v{self._oldest[0]}.{self._oldest[1]}"
        return version

    def authenticate(self, token_value: str | None) -> Token:
        if not token_value:
            raise missing_token()
        token = self.state.tokens.get(token_value)
        if token is None:
            raise unparseable_token()
        now = self.state.clock.now()
        if token.state == "expired" or (token.expires_at and token.expires_at <= now):
            expired_at = token.expires_at if token.expires_at else now - 3600
            raise expired_token(_http_date(expired_at), _http_date(now))
        if token.state == "invalidated":
            raise invalidated_token()
        return token

    def pixel_for(self, pixel_id: str, token: Token, method: str) -> Pixel:
        pixel = self.state.pixels.get(pixel_id)
        if pixel is None or token.token not in pixel.tokens:
            raise object_not_found(pixel_id, method)
        return pixel

    def fault_error(self, fault: Fault) -> GraphError:
        if fault.kind == "http_500":
            return GraphError(
                message="An unknown error occurred", code=1, status=500, is_transient=False
            )
        if fault.kind == "transient":
            return GraphError(
                message="An unexpected error has occurred. Please retry your request later.",
                code=fault.code or 2,
                status=500,
                error_subcode=fault.error_subcode,
                is_transient=True,
            )
        if fault.kind == "rate_limit":
            code = fault.code or 17
            return GraphError(
                message=_RATE_LIMIT_MESSAGES.get(code, f"(#{code}) Request limit reached"),
                code=code,
                error_subcode=fault.error_subcode,
                is_transient=True,
            )
        if fault.kind == "token_expired":
            if fault.error_subcode == 460:
                return invalidated_token()
            now = self.state.clock.now()
            return expired_token(_http_date(now - 3600), _http_date(now))
        raise AssertionError(f"no error rendering for fault {fault.kind}")

    # --- Graph endpoints ------------------------------------------------------------------
    async def post_events(
        self, request: Request, version: str, pixel_id: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        effective = self.effective_version(version, f"{pixel_id}/events")
        request.state.api_version = effective
        faults = self.state.take_faults(pixel_id)
        latency_ms = self.state.global_latency_ms + sum(
            f.latency_ms for f in faults if f.kind == "latency_ms"
        )
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        failure = next((f for f in faults if f.kind != "latency_ms"), None)
        if failure is not None:
            request.state.fault = failure.kind
            if not failure.accept_before:
                await self._fail(request, failure)

        token = self.authenticate(_token_of(request, params))
        pixel = self.pixel_for(pixel_id, token, "post")
        events = validate_events(
            parse_data(params.get("data")), self.state.clock.now(), self.config.future_tolerance_s
        )
        test_event_code = _optional_str(params, "test_event_code")
        partner_agent = _optional_str(params, "partner_agent")
        self.state.accept_events(
            pixel, request.state.record_id, events, test_event_code, partner_agent
        )
        if failure is not None:
            await self._fail(request, failure)
        return {
            "events_received": len(events),
            "messages": [],
            "fbtrace_id": request.state.fbtrace_id,
        }

    async def _fail(self, request: Request, fault: Fault) -> None:
        if fault.kind == "timeout":
            await _hang(request, fault.hang_s)
            raise GraphError(
                message="Service temporarily unavailable", code=2, status=504, is_transient=True
            )
        if fault.kind == "http_503":
            raise _HtmlFailure(503, _HTML_503)
        raise self.fault_error(fault)

    def debug_token(self, request: Request, version: str, params: dict[str, Any]) -> dict[str, Any]:
        request.state.api_version = self.effective_version(version, "debug_token")
        access_token = _token_of(request, params)
        if not access_token:
            raise missing_token()
        app_id, _, secret = access_token.partition("|")
        app = self.state.apps.get(app_id)
        if app is not None and secret:
            if secret != app.secret:
                raise GraphError(
                    message="Invalid OAuth access token signature.", code=190, status=401
                )
        else:
            self.authenticate(access_token)
        input_token = params.get("input_token")
        if not input_token:
            raise bad_request_param("The parameter input_token is required")
        token = self.state.tokens.get(str(input_token))
        if token is None:
            return {
                "data": {
                    "error": {
                        "code": 190,
                        "message": "Invalid OAuth access token - Cannot parse access token",
                    },
                    "is_valid": False,
                    "scopes": [],
                }
            }
        owner = self.state.apps.get(token.app_id)
        data: dict[str, Any] = {
            "app_id": token.app_id,
            "type": token.type,
            "application": owner.name if owner else "",
            "data_access_expires_at": 0,
            "expires_at": token.expires_at,
            "is_valid": True,
            "scopes": list(token.scopes),
            "user_id": token.user_id,
        }
        try:
            self.authenticate(token.token)
        except GraphError as error:
            data["is_valid"] = False
            data["error"] = {
                "code": error.code,
                "message": error.message,
                "subcode": error.error_subcode,
            }
        return {"data": data}

    def get_node(
        self, request: Request, version: str, node_id: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        request.state.api_version = self.effective_version(version, node_id)
        token = self.authenticate(_token_of(request, params))
        pixel = self.pixel_for(node_id, token, "get")
        requested = [
            f.strip() for f in str(params.get("fields") or "id,name").split(",") if f.strip()
        ]
        for name in requested:
            if name not in _PIXEL_FIELDS:
                raise bad_request_param(
                    f"Tried accessing nonexisting field ({name}) on node type (AdsPixel)"
                )
        values: dict[str, Any] = {
            "id": pixel.pixel_id,
            "name": pixel.name,
            "is_unavailable": pixel.is_unavailable,
            "creation_time": _graph_time(0),
        }
        if pixel.last_fired_time is not None:
            values["last_fired_time"] = _graph_time(pixel.last_fired_time)
        # Graph leaves out fields that have no value (a pixel that never fired).
        return {name: values[name] for name in requested if name in values}


class _HtmlFailure(Exception):
    """A failure answered by Meta's edge rather than the Graph API: HTML, not JSON."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


async def _hang(request: Request, seconds: float) -> None:
    """Hold the request like an overloaded upstream, until the client gives up or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.05)


def _token_of(request: Request, params: dict[str, Any]) -> str | None:
    token = params.get("access_token")
    if token:
        return str(token)
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    return None


def _optional_str(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise bad_request_param(f"param {name} must be a string.")
    return value


async def _read_params(request: Request) -> dict[str, Any]:
    """Graph reads parameters from the query string and from a JSON or form-encoded body."""
    params: dict[str, Any] = dict(request.query_params)
    raw = await request.body()
    if not raw:
        return params
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        params.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        return params
    try:
        body = json.loads(raw)
    except ValueError:
        if content_type == "application/json":
            raise bad_request_param("The request body is not valid JSON.") from None
        params.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        return params
    if not isinstance(body, dict):
        raise bad_request_param("The request body must be a JSON object.")
    params.update(body)
    return params


def _recordable(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters as tests want to read them: ``data`` decoded when it came as a string."""
    recorded = dict(params)
    data = recorded.get("data")
    if isinstance(data, str):
        with contextlib.suppress(ValueError):
            data = json.loads(data)
    if isinstance(data, list):
        recorded["data"] = [decode_event(item) for item in data]
    return recorded


def create_app(
    config: MetaConfig | None = None,
    clock: Clock | None = None,
    bootstrap: Callable[[MetaState], None] | None = None,
) -> FastAPI:
    """Build the fake. ``bootstrap`` registers fixtures at start and again after every reset."""
    config = config or MetaConfig()
    state = MetaState(
        clock or SystemClock(),
        seed=config.seed,
        max_requests=config.max_recorded_requests,
        max_events=config.max_recorded_events,
    )
    if bootstrap is not None:
        bootstrap(state)
    app = FastAPI(
        title="Track AI sandbox: Meta Graph API",
        docs_url="/_sandbox/docs",
        openapi_url="/_sandbox/openapi.json",
        redoc_url=None,
    )
    app.state.meta = state
    # Control routes first, so Graph's catch-all route never shadows them.
    _add_control_routes(app, state, bootstrap)
    _add_graph_routes(app, MetaGraph(state, config))
    return app


async def _graph_call(
    graph: MetaGraph,
    request: Request,
    pixel_id: str | None,
    handler: Callable[[dict[str, Any]], Any],
) -> Response:
    """Record the request, run the handler, and answer the way graph.facebook.com does."""
    state = graph.state
    started = time.perf_counter()
    request.state.fbtrace_id = new_fbtrace_id(state.rng)
    request.state.api_version = graph.config.api_versions[-1]
    request.state.fault = None
    record = state.record_request(
        request.method, request.url.path, pixel_id, dict(request.query_params), None
    )
    request.state.record_id = record.id
    response: Response
    try:
        params = await _read_params(request)
        record.body = _recordable({k: v for k, v in params.items() if k not in record.query})
        result = handler(params)
        if asyncio.iscoroutine(result):
            result = await result
        record.status, record.response = 200, result
        response = JSONResponse(result)
    except GraphError as error:
        body = error.render(request.state.fbtrace_id)
        record.status, record.response = error.status, body
        response = JSONResponse(body, status_code=error.status, headers=error.headers)
        if error.status == 401:
            response.headers["www-authenticate"] = (
                f'OAuth "Facebook Platform" "invalid_token" "{error.message}"'
            )
    except _HtmlFailure as failure:
        record.status, record.response = failure.status, failure.body
        response = HTMLResponse(failure.body, status_code=failure.status)
    record.fault = request.state.fault
    record.latency_ms = (time.perf_counter() - started) * 1000
    response.headers["x-fb-trace-id"] = request.state.fbtrace_id
    response.headers["facebook-api-version"] = request.state.api_version
    logger.info(
        "graph %s %s -> %s (%.1f ms)%s",
        request.method,
        request.url.path,
        record.status,
        record.latency_ms,
        f" fault={record.fault}" if record.fault else "",
    )
    return response


def _add_graph_routes(app: FastAPI, graph: MetaGraph) -> None:
    @app.get("/{version}/debug_token")
    async def debug_token(request: Request, version: str) -> Response:
        return await _graph_call(
            graph, request, None, lambda params: graph.debug_token(request, version, params)
        )

    @app.post("/{version}/{pixel_id}/events")
    async def post_events(request: Request, version: str, pixel_id: str) -> Response:
        return await _graph_call(
            graph,
            request,
            pixel_id,
            lambda params: graph.post_events(request, version, pixel_id, params),
        )

    @app.get("/{version}/{node_id}")
    async def get_node(request: Request, version: str, node_id: str) -> Response:
        return await _graph_call(
            graph,
            request,
            node_id,
            lambda params: graph.get_node(request, version, node_id, params),
        )

    @app.api_route("/{path:path}", methods=["GET", "POST", "DELETE", "PUT"])
    async def unknown(request: Request, path: str) -> Response:
        def answer(params: dict[str, Any]) -> dict[str, Any]:
            version, _, rest = path.partition("/")
            if _VERSION.fullmatch(version) is None:
                raise unknown_path(f"/{path}")
            raise unknown_path(f"/{rest}" if rest else f"/{version}")

        return await _graph_call(graph, request, None, answer)


def _add_control_routes(
    app: FastAPI, state: MetaState, bootstrap: Callable[[MetaState], None] | None
) -> None:
    @app.get("/_sandbox/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/_sandbox/reset")
    async def reset(body: ResetIn | None = None) -> dict[str, str]:
        state.reset(body.seed if body else None)
        if bootstrap is not None:
            bootstrap(state)
        return {"status": "reset"}

    @app.post("/_sandbox/apps")
    async def register_app(body: AppIn) -> dict[str, Any]:
        state.register_app(body.app_id, body.name, body.secret)
        return {"app_id": body.app_id, "name": body.name}

    @app.post("/_sandbox/tokens")
    async def register_token(body: TokenIn) -> dict[str, Any]:
        token = state.register_token(
            Token(
                token=body.token,
                app_id=body.app_id or _default_app_id(state),
                type=body.type,
                user_id=body.user_id,
                scopes=body.scopes,
                expires_at=body.expires_at,
                state=body.state,
            )
        )
        for pixel_id in body.pixel_ids:
            state.register_pixel(pixel_id, _pixel_name(state, pixel_id), [token.token])
        return {"token": token.token, "state": token.state, "pixel_ids": body.pixel_ids}

    @app.post("/_sandbox/pixels")
    async def register_pixel(body: PixelIn) -> dict[str, Any]:
        tokens = [*body.tokens, *([body.token] if body.token else [])]
        for value in tokens:
            if value not in state.tokens:
                state.register_token(
                    Token(
                        token=value,
                        app_id=body.app_id or _default_app_id(state),
                        type=body.token_type,
                        scopes=body.scopes,
                        expires_at=body.expires_at,
                    )
                )
        name = body.name or _pixel_name(state, body.pixel_id)
        pixel = state.register_pixel(body.pixel_id, name, tokens)
        pixel.is_unavailable = body.is_unavailable
        return {"pixel_id": pixel.pixel_id, "name": pixel.name, "tokens": sorted(pixel.tokens)}

    _add_fault_routes(app, state)
    _add_recording_routes(app, state)


def _add_fault_routes(app: FastAPI, state: MetaState) -> None:
    @app.post("/_sandbox/faults")
    async def add_fault(body: FaultIn) -> dict[str, Any]:
        fault = state.add_fault(
            kind=body.kind,
            pixel_id=body.pixel_id,
            remaining=body.count,
            probability=body.probability,
            latency_ms=body.latency_ms,
            code=body.code,
            error_subcode=body.error_subcode,
            hang_s=body.hang_s,
            accept_before=body.accept_before,
        )
        return _fault_dict(fault)

    @app.get("/_sandbox/faults")
    async def list_faults() -> dict[str, Any]:
        faults = [_fault_dict(f) for f in state.faults]
        return {"data": faults, "latency_ms": state.global_latency_ms}

    @app.delete("/_sandbox/faults")
    async def clear_faults() -> dict[str, Any]:
        state.faults.clear()
        state.global_latency_ms = 0
        return {"data": []}

    @app.post("/_sandbox/latency")
    async def set_latency(body: LatencyIn) -> dict[str, int]:
        state.global_latency_ms = body.ms
        return {"latency_ms": body.ms}

    @app.post("/_sandbox/clock")
    async def set_clock(body: ClockIn) -> dict[str, Any]:
        state.clock.frozen_at = body.now
        return {"now": state.clock.now(), "frozen": body.now is not None}


def _add_recording_routes(app: FastAPI, state: MetaState) -> None:
    @app.get("/_sandbox/requests")
    async def list_requests(pixel_id: str | None = None, limit: int = 1000) -> dict[str, Any]:
        rows = [r.as_dict() for r in state.requests if pixel_id is None or r.pixel_id == pixel_id]
        return {"data": rows[-limit:], "total": len(rows)}

    @app.get("/_sandbox/events")
    async def list_events(
        pixel_id: str | None = None,
        event_id: str | None = None,
        event_name: str | None = None,
        test_event_code: str | None = None,
        limit: int = 10_000,
    ) -> dict[str, Any]:
        rows = [
            e.as_dict()
            for e in state.events
            if (pixel_id is None or e.pixel_id == pixel_id)
            and (event_id is None or str(e.event.get("event_id")) == event_id)
            and (event_name is None or e.event.get("event_name") == event_name)
            and (test_event_code is None or e.test_event_code == test_event_code)
        ]
        return {"data": rows[-limit:], "total": len(rows)}

    @app.get("/_sandbox/event-counts")
    async def event_counts(
        pixel_id: str | None = None, event_id: str | None = None, min_count: int = 1
    ) -> dict[str, Any]:
        rows = [
            {"pixel_id": p, "event_name": n, "event_id": i or None, "count": c}
            for (p, n, i), c in state.event_counts.items()
            if c >= min_count
            and (pixel_id is None or p == pixel_id)
            and (event_id is None or i == event_id)
        ]
        return {"data": rows, "total": len(rows)}


def _default_app_id(state: MetaState) -> str:
    return next(iter(state.apps), "100000000000001")


def _pixel_name(state: MetaState, pixel_id: str) -> str:
    existing = state.pixels.get(pixel_id)
    return existing.name if existing else f"Sandbox pixel {pixel_id}"


def _fault_dict(fault: Fault) -> dict[str, Any]:
    return {
        "id": fault.id,
        "kind": fault.kind,
        "pixel_id": fault.pixel_id,
        "remaining": fault.remaining,
        "probability": fault.probability,
        "latency_ms": fault.latency_ms,
        "code": fault.code,
        "error_subcode": fault.error_subcode,
        "hang_s": fault.hang_s,
        "accept_before": fault.accept_before,
    }
