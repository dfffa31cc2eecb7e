"""The Sentry fake as a FastAPI app: the envelope ingest endpoint, plus ``/_sandbox``.

``POST /api/{project_id}/envelope/`` takes what the SDKs send: an envelope, optionally gzip- or
deflate-compressed, authenticated by ``X-Sentry-Auth: Sentry sentry_key=...`` (or the
``sentry_key`` query parameter). Answers are Sentry's: ``{"id": event_id}``, 400 for a malformed
envelope, 401 without a key, 413 past the size limit.
"""

from __future__ import annotations

import zlib
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from trackai_sandbox.sentry.state import EnvelopeError, SentryState

#: Relay's limit for a whole (decompressed) envelope.
MAX_ENVELOPE_BYTES = 200 * 1024 * 1024


def _public_key(request: Request) -> str | None:
    auth = request.headers.get("x-sentry-auth") or request.headers.get("authorization") or ""
    if auth.lower().startswith("sentry "):
        for part in auth[7:].split(","):
            name, _, value = part.strip().partition("=")
            if name == "sentry_key" and value:
                return value
    return request.query_params.get("sentry_key") or None


def _decoded(body: bytes, encoding: str) -> bytes:
    if encoding in {"", "identity"}:
        return body
    if encoding == "gzip":
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompress(body)
    raise EnvelopeError(f"unsupported Content-Encoding {encoding!r}")


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def create_app(state: SentryState | None = None) -> FastAPI:
    state = state or SentryState()
    app = FastAPI(title="Sentry (sandbox)", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sentry = state

    @app.post("/api/{project_id}/envelope/")
    async def envelope(project_id: str, request: Request) -> Response:
        key = _public_key(request)
        if key is None:
            return _error(401, "missing authorization information")
        try:
            body = _decoded(
                await request.body(), request.headers.get("content-encoding", "").strip().lower()
            )
            if len(body) > MAX_ENVELOPE_BYTES:
                return _error(413, "envelope exceeded size limits")
            event_id = state.store(project_id, key, body)
        except (EnvelopeError, zlib.error) as exc:
            return _error(400, f"invalid envelope: {exc}")
        return JSONResponse({"id": event_id} if event_id else {})

    @app.get("/_sandbox/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/_sandbox/items")
    async def items(type: str | None = None) -> dict[str, Any]:
        chosen = [i.as_dict() for i in state.items if type is None or i.type == type]
        return {"envelopes": state.envelopes, "items": chosen}

    @app.get("/_sandbox/events")
    async def events() -> dict[str, Any]:
        """Error events' payloads, oldest first (what Sentry's issue view would show)."""
        return {"events": [i.payload for i in state.items if i.type == "event"]}

    @app.post("/_sandbox/reset")
    async def reset() -> dict[str, str]:
        state.reset()
        return {"status": "reset"}

    return app
