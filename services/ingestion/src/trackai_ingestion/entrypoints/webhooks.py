"""HTTP entry point of checkout webhooks: ``POST /api/v1/webhooks/{gateway}/{tenant_id}``.

Only transport concerns live here: the gateway must exist, the content type must be JSON (or the
gateway's own form encoding), and the
body is read with a hard cap (``Content-Length`` is checked first, then the bytes as they stream,
so an oversized or lying request never gets buffered past the cap).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from trackai_ingestion.domain.gateways import ADAPTERS, WebhookRequest
from trackai_ingestion.service_layer.webhooks import WebhookOutcome, WebhookService, unknown_gateway

#: The largest webhook body accepted (gateways send a few KB).
MAX_BODY_BYTES = 1024 * 1024


class _TooLarge(Exception):
    pass


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge
    return bytes(body)


def _accepted(content_type: str | None, gateway: str) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return (
        media == "application/json"
        or (media.startswith("application/") and media.endswith("+json"))
        or media in ADAPTERS[gateway].other_media_types
    )


def _joined_headers(request: Request) -> dict[str, str]:
    """Header name -> value, repeated lines joined by ", " as HTTP defines (RFC 9110 5.3)."""
    joined: dict[str, str] = {}
    for name, value in request.headers.items():
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    return joined


def _respond(outcome: WebhookOutcome) -> JSONResponse:
    return JSONResponse(outcome.body, status_code=outcome.status, headers=outcome.headers)


def build_webhook_router(
    service: WebhookService, *, max_body_bytes: int = MAX_BODY_BYTES
) -> APIRouter:
    router = APIRouter()

    @router.post("/api/v1/webhooks/{gateway}/{tenant_id}", name="receive_webhook")
    async def receive_webhook(gateway: str, tenant_id: str, request: Request) -> JSONResponse:
        if gateway not in ADAPTERS:
            return _respond(unknown_gateway(gateway))
        content_type = request.headers.get("content-type")
        if not _accepted(content_type, gateway):
            return JSONResponse(
                {
                    "error": "unsupported_media_type",
                    "detail": f"webhooks must be sent as application/json, got "
                    f"{(content_type or 'no Content-Type')[:80]!r}",
                },
                status_code=415,
            )
        try:
            raw = await _read_capped(request, max_body_bytes)
        except _TooLarge:
            return JSONResponse(
                {
                    "error": "payload_too_large",
                    "detail": f"webhook bodies are limited to {max_body_bytes} bytes",
                },
                status_code=413,
                headers={"Connection": "close"},
            )
        outcome = await service.receive(
            gateway,
            tenant_id,
            WebhookRequest(raw, _joined_headers(request), dict(request.query_params)),
            source_ip=request.client.host if request.client else None,
        )
        return _respond(outcome)

    return router
