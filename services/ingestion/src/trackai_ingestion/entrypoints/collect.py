"""HTTP side of browser collection: ``POST /api/v1/collect/{tenant}`` with its CORS preflight, and
the tracking script at ``GET /sdk/v1/track.js``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request, Response

from trackai_ingestion.domain.collect import (
    MAX_BODY_BYTES,
    CollectTenant,
    HitPayload,
    InvalidHit,
    client_ip,
    forwarded_client,
    origin_allowed,
    parse_networks,
    rate_key,
    request_origin,
    sender_address,
)
from trackai_ingestion.entrypoints.http_answers import Refused, read_capped
from trackai_ingestion.service_layer.collect import (
    RecordBrowserHit,
    Recorded,
)
from trackai_ingestion.service_layer.collect_limits import CollectRateLimit
from trackai_ingestion.service_layer.ports import RegistryUnavailable, StorageUnavailable
from trackai_ingestion.service_layer.windows import UnknownTenantLimit
from trackai_ingestion.telemetry import (
    ATTR_COLLECT_REASON,
    ATTR_COLLECT_STATUS,
    COLLECT_HITS,
    COLLECT_REFUSED,
    status_outcome,
)
from trackai_kit.logging import get_logger

log = get_logger(__name__)

COLLECT_PATH = "/api/v1/collect/{tenant_ref}"
SCRIPT_PATH = "/sdk/v1/track.js"
#: Chromium caps preflight caching at 2 hours; asking for more is ignored.
PREFLIGHT_MAX_AGE_S = 7200
#: sendBeacon sends a string as text/plain; fetch() may send JSON (which needs a preflight).
_ACCEPTED_MEDIA_TYPES = {"application/json", "text/plain", ""}
_REGISTRY_RETRY_AFTER_S = "5"
#: A tenant UUID or slug (the registry's slug rule), checked before asking the registry.
_TENANT_REF = re.compile(
    r"[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}|[a-z0-9][a-z0-9-]{0,39}"
)


#: The body is read raw (size-capped before parsing), so FastAPI cannot infer it: the contract
#: for the tracking script and for the schemathesis run against this schema.
COLLECT_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One hit as JSON (beacons send it as text/plain).",
        "content": {
            "application/json": {"schema": HitPayload.model_json_schema()},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}


class _Script:
    """The tracking script, loaded once, served with a strong ETag and gzip when accepted."""

    def __init__(self, max_age_s: int) -> None:
        self.body = resources.files("trackai_ingestion").joinpath("static/track.js").read_bytes()
        self.gzipped = gzip.compress(self.body, compresslevel=9, mtime=0)
        digest = hashlib.sha256(self.body).hexdigest()[:32]
        # Each encoding is its own representation, hence its own strong ETag.
        self.etags = {"identity": f'"{digest}"', "gzip": f'"{digest}-gzip"'}
        self.headers = {
            "Cache-Control": f"public, max-age={max_age_s}, stale-while-revalidate=86400",
            "Vary": "Accept-Encoding",
            "X-Content-Type-Options": "nosniff",
            # Lets pages load it with `crossorigin` + Subresource Integrity.
            "Access-Control-Allow-Origin": "*",
        }

    def response(self, request: Request) -> Response:
        encoding = "gzip" if "gzip" in request.headers.get("accept-encoding", "") else "identity"
        headers = {**self.headers, "ETag": self.etags[encoding]}
        if self.etags[encoding] in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        body = self.body
        if encoding == "gzip":
            body = self.gzipped
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)


async def _lookup(
    record: RecordBrowserHit,
    tenant_ref: str,
    unknown_tenants: UnknownTenantLimit | None,
    source: str | None,
) -> CollectTenant:
    unknown = Refused(404, "unknown_tenant", "no tenant with this id or slug")
    # Junk paths never reach the registry (nor its negative cache).
    if not _TENANT_REF.fullmatch(tenant_ref):
        raise unknown
    if unknown_tenants is not None and (wait := unknown_tenants.retry_after(source, tenant_ref)):
        raise Refused(
            429,
            "too_many_unknown_tenants",
            "too many requests for unknown tenants from this address; retry later",
            {"Retry-After": str(wait)},
        )
    try:
        tenant = await record.tenant(tenant_ref)
    except RegistryUnavailable:
        log.warning("tenant registry unavailable for collect", tenant_ref=tenant_ref)
        raise Refused(
            503,
            "registry_unavailable",
            "tenant configuration temporarily unavailable; retry",
            {"Retry-After": _REGISTRY_RETRY_AFTER_S},
        ) from None
    if tenant is None:
        if unknown_tenants is not None:
            unknown_tenants.unknown(source)
        raise unknown
    return tenant


def _allowed_origin(origin: str | None, tenant: CollectTenant) -> str:
    if origin is None or not origin_allowed(origin, tenant.allowed_domains):
        log.info("collect origin refused", tenant_id=tenant.tenant_id, origin=origin)
        raise Refused(
            403,
            "origin_not_allowed",
            "this page's domain is not in the tenant's allowed domains"
            if origin
            else "an Origin header from one of the tenant's allowed domains is required",
        )
    return origin


async def _store(
    record: RecordBrowserHit,
    tenant: CollectTenant,
    payload: object,
    *,
    client_ip: str | None,
    user_agent: str | None,
    cors: dict[str, str],
) -> Recorded:
    """Record the hit; a refusal (422 naming the fields, 503 when the database is away)."""
    try:
        return await record(tenant, payload, client_ip=client_ip, user_agent=user_agent)
    except InvalidHit as exc:
        # Field names only in the log: the values may be personal data.
        log.info(
            "collect hit refused",
            tenant_id=tenant.tenant_id,
            fields=[".".join(map(str, e.loc)) for e in exc.errors],
        )
        detail = [
            {"loc": ["body", *error.loc], "msg": error.msg, "type": error.type}
            for error in exc.errors
        ]
        raise Refused(422, "invalid_request", detail, cors) from None
    except StorageUnavailable as exc:
        log.warning(
            "collect hit not stored; database unavailable",
            tenant_id=tenant.tenant_id,
            error=str(exc),
        )
        raise Refused(
            503,
            "database_unavailable",
            "the hit could not be stored now; retry",
            {**cors, "Retry-After": _REGISTRY_RETRY_AFTER_S},
        ) from None


def build_collect_router(
    record: RecordBrowserHit,
    *,
    trusted_proxies: Sequence[str] = (),
    script_max_age_s: int = 3600,
    unknown_tenants: UnknownTenantLimit | None = None,
    rate_limit: CollectRateLimit | None = None,
) -> APIRouter:
    """Routes of browser collection. ``trusted_proxies``: CIDRs whose ``X-Forwarded-For`` is
    believed (the load balancer / ingress); from anyone else the TCP peer is the client.
    ``rate_limit``: the per-client and per-tenant ceilings of hits (none when omitted).
    """
    trusted = parse_networks(trusted_proxies)
    script = _Script(script_max_age_s)
    router = APIRouter()

    def sender(request: Request) -> str | None:
        peer = request.client.host if request.client else None
        return sender_address(peer, request.headers.getlist("x-forwarded-for"), trusted)

    async def answer_preflight(tenant_ref: str, request: Request) -> Response:
        tenant = await _lookup(
            record,
            tenant_ref,
            unknown_tenants,
            sender(request),
        )
        origin = _allowed_origin(request.headers.get("origin"), tenant)
        return Response(
            status_code=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type",
                "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
                "Vary": "Origin",
            },
        )

    async def accept_hit(tenant_ref: str, request: Request) -> Response:
        body = await read_capped(request, MAX_BODY_BYTES)
        if body is None:
            raise Refused(413, "body_too_large", f"a hit is limited to {MAX_BODY_BYTES} bytes")
        tenant = await _lookup(
            record,
            tenant_ref,
            unknown_tenants,
            sender(request),
        )
        # Browsers always send Origin on cross-origin POSTs; without it, the Referer's origin.
        origin = _allowed_origin(
            request_origin(request.headers.get("origin"), request.headers.get("referer")), tenant
        )
        cors = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        peer = request.client.host if request.client else None
        forwarded_for = request.headers.getlist("x-forwarded-for")
        if rate_limit is not None:
            client_key = rate_key(forwarded_client(peer, forwarded_for, trusted))
            if refusal := await rate_limit.check(tenant.tenant_id, client_key):
                raise Refused(
                    429,
                    refusal.error,
                    refusal.detail,
                    {**cors, "Retry-After": str(refusal.retry_after_s)},
                )
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type not in _ACCEPTED_MEDIA_TYPES:
            raise Refused(
                415, "unsupported_media_type", "send JSON as application/json or text/plain", cors
            )
        try:
            payload = json.loads(body)
        except ValueError:  # UnicodeDecodeError included
            raise Refused(400, "invalid_json", "the body is not valid UTF-8 JSON", cors) from None
        recorded = await _store(
            record,
            tenant,
            payload,
            client_ip=client_ip(peer, forwarded_for, trusted),
            user_agent=request.headers.get("user-agent"),
            cors=cors,
        )
        if not recorded.stored:
            log.debug("duplicate hit absorbed", tenant_id=tenant.tenant_id)
        return Response(status_code=204, headers=cors)

    @router.options(COLLECT_PATH, include_in_schema=False)
    async def preflight(tenant_ref: str, request: Request) -> Response:
        try:
            return await answer_preflight(tenant_ref, request)
        except Refused as refused:
            return refused.response()

    @router.post(
        COLLECT_PATH, status_code=204, response_class=Response, openapi_extra=COLLECT_OPENAPI
    )
    async def collect(tenant_ref: str, request: Request) -> Response:
        """Record a page view, lead or checkout start (JSON, sent as text/plain by beacons)."""
        try:
            answer = await accept_hit(tenant_ref, request)
        except Refused as refused:
            COLLECT_REFUSED.add(
                1, {ATTR_COLLECT_STATUS: refused.status, ATTR_COLLECT_REASON: refused.error}
            )
            answer = refused.response()
        COLLECT_HITS.add(1, {"outcome": status_outcome(answer.status_code)})
        return answer

    @router.api_route(SCRIPT_PATH, methods=["GET", "HEAD"], include_in_schema=False)
    async def tracking_script(request: Request) -> Response:
        return script.response(request)

    return router
