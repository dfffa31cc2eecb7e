"""HTTP entry point of checkout webhooks: ``POST /api/v1/webhooks/{gateway}/{tenant_id}``.

Only transport concerns live here: the gateway must exist, the content type must be JSON (or the
gateway's own form encoding), at most ``max_in_flight`` webhooks are handled at once (503 +
Retry-After beyond: a bounded amount of memory and database work, whatever the load), and the body
is read with a hard cap and a time limit (``Content-Length`` is checked first, then the bytes as
they stream, so an oversized, lying or trickling request never gets buffered past the cap nor
holds a slot for long).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from trackai_ingestion.domain.collect import IpNetwork, parse_networks, sender_address
from trackai_ingestion.domain.gateways import ADAPTERS, WebhookRequest
from trackai_ingestion.entrypoints.http_answers import Refused, read_capped
from trackai_ingestion.service_layer.webhooks import WebhookOutcome, WebhookService, unknown_gateway
from trackai_kit.logging import get_logger

log = get_logger(__name__)

#: Seconds an overloaded replica asks the gateway to wait.
OVERLOADED_RETRY_AFTER_S = 5


@dataclass(frozen=True)
class WebhookLimits:
    """``Settings.webhook_*``: see docs/runbooks/webhooks.md."""

    max_body_bytes: int = 128 * 1024
    body_timeout_s: float = 10.0
    max_in_flight: int = 64


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


def _unread(status: int, error: str, detail: str) -> Refused:
    """A refusal while the body is unread: the connection is closed (what is left of the body
    would otherwise be read as the next request)."""
    return Refused(status, error, detail, {"Connection": "close"})


def _respond(outcome: WebhookOutcome) -> JSONResponse:
    return JSONResponse(outcome.body, status_code=outcome.status, headers=outcome.headers)


#: The body is read raw (signatures are over its exact bytes), so FastAPI cannot infer it: the
#: contract documented for clients and for the schemathesis run against this schema.
WEBHOOK_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The gateway's own JSON notification, byte for byte as it signed it "
        "(Monetizze may also send it form-encoded).",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
        },
    },
}


def build_webhook_router(
    service: WebhookService,
    limits: WebhookLimits | None = None,
    *,
    trusted_proxies: Sequence[str] = (),
) -> APIRouter:
    """``trusted_proxies``: CIDRs whose ``X-Forwarded-For`` names the sender (logs, per-source
    limits); from anyone else the TCP peer is the sender."""
    limits = limits or WebhookLimits()
    trusted = parse_networks(trusted_proxies)
    router = APIRouter()
    in_flight = 0

    @router.post(
        "/api/v1/webhooks/{gateway}/{tenant_id}",
        name="receive_webhook",
        openapi_extra=WEBHOOK_OPENAPI,
    )
    async def receive_webhook(gateway: str, tenant_id: str, request: Request) -> JSONResponse:
        nonlocal in_flight
        if gateway not in ADAPTERS:
            return _respond(unknown_gateway(gateway))
        content_type = request.headers.get("content-type")
        if not _accepted(content_type, gateway):
            return Refused(
                415,
                "unsupported_media_type",
                "webhooks must be sent as application/json, got "
                f"{(content_type or 'no Content-Type')[:80]!r}",
            ).response()
        if in_flight >= limits.max_in_flight:
            log.warning("webhook refused: replica busy", gateway=gateway, in_flight=in_flight)
            return Refused(
                503,
                "overloaded",
                f"{in_flight} webhooks are being handled; retry later",
                {"Retry-After": str(OVERLOADED_RETRY_AFTER_S)},
            ).response()
        in_flight += 1
        try:
            return await _receive(
                service, limits, trusted, gateway=gateway, tenant_id=tenant_id, request=request
            )
        except Refused as refused:
            return refused.response()
        except Exception:
            # Nothing is known to get here; should something, the client gets an answer that
            # closes the connection cleanly (never a socket reset on its next, kept-alive request).
            log.exception("webhook failed unexpectedly", gateway=gateway, tenant_id=tenant_id)
            return JSONResponse(
                {"error": "internal_error"}, status_code=500, headers={"Connection": "close"}
            )
        finally:
            in_flight -= 1

    return router


async def _receive(
    service: WebhookService,
    limits: WebhookLimits,
    trusted: tuple[IpNetwork, ...],
    *,
    gateway: str,
    tenant_id: str,
    request: Request,
) -> JSONResponse:
    try:
        async with asyncio.timeout(limits.body_timeout_s):
            raw = await read_capped(request, limits.max_body_bytes)
    except TimeoutError:
        raise _unread(
            408, "body_timeout", f"the body was not received within {limits.body_timeout_s:g} s"
        ) from None
    if raw is None:
        raise _unread(
            413, "payload_too_large", f"bodies are limited to {limits.max_body_bytes} bytes"
        )
    outcome = await service.receive(
        gateway,
        tenant_id,
        WebhookRequest(raw, _joined_headers(request), request.query_params.multi_items()),
        source_ip=sender_address(
            request.client.host if request.client else None,
            request.headers.getlist("x-forwarded-for"),
            trusted,
        ),
    )
    return _respond(outcome)
