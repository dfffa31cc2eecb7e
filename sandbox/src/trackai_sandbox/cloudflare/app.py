"""The Cloudflare fake as a FastAPI app: ``/client/v4`` zones and DNS records, plus ``/_sandbox``.

Answers use Cloudflare's envelope ``{"success","errors","messages","result"[,"result_info"]}``;
errors carry Cloudflare's numeric codes (see ``sandbox/README.md`` for which are observed and
which are the sandbox's choice).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from trackai_sandbox.cloudflare.state import (
    ApiToken,
    CloudflareState,
    DnsRecord,
    RateWindow,
    TokenStatus,
    Zone,
)
from trackai_sandbox.provider_faults import FaultBook, fake_app

logger = logging.getLogger("trackai_sandbox.cloudflare")

API = "/client/v4"
_TOKEN_FORMAT = re.compile(r"[A-Za-z0-9_-]{40}")
_ZONE_ID_FORMAT = re.compile(r"[0-9a-f]{32}")
_RECORD_TYPES = frozenset(
    {
        "A",
        "AAAA",
        "CAA",
        "CERT",
        "CNAME",
        "DNSKEY",
        "DS",
        "HTTPS",
        "LOC",
        "MX",
        "NAPTR",
        "NS",
        "OPENPGPKEY",
        "PTR",
        "SMIMEA",
        "SRV",
        "SSHFP",
        "SVCB",
        "TLSA",
        "TXT",
        "URI",
    }
)
_IPV4 = re.compile(r"(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}")
_HOSTNAME = re.compile(r"(?=.{1,253}$)([a-z0-9_*]([a-z0-9_-]{0,61}[a-z0-9_])?\.?)+", re.IGNORECASE)
_ORDERABLE = ("type", "name", "content", "ttl", "proxied")


@dataclass(frozen=True)
class CloudflareConfig:
    """Behaviour knobs (the launcher fills them from ``SANDBOX_CLOUDFLARE_*``)."""

    account_id: str = "01a7362d577a6c3019a474fd6f485823"
    #: Calls per window per token, then every call is refused for a whole window.
    rate_limit: int = 1200
    rate_window_s: float = 300.0
    #: Code for "an identical record already exists": 81058 today, 81057 on older answers.
    identical_record_code: int = 81058


class CloudflareError(Exception):
    """One failed answer: HTTP status plus Cloudflare's ``errors`` list."""

    def __init__(
        self, status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(errors[0]["message"] if errors else str(status))
        self.status = status
        self.errors = errors
        self.headers = headers or {}


def _error(
    status: int, code: int, message: str, chain: Sequence[tuple[int, str]] = ()
) -> CloudflareError:
    entry: dict[str, Any] = {"code": code, "message": message}
    if chain:
        entry["error_chain"] = [{"code": c, "message": m} for c, m in chain]
    return CloudflareError(status, [entry])


def _validation(code: int, message: str) -> CloudflareError:
    return _error(400, 1004, "DNS Validation Error", [(code, message)])


def envelope(result: Any, result_info: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return body


def render_5xx(status: int) -> tuple[str, bytes]:
    """Cloudflare's API answers its own 5xx as a JSON envelope (code 10000 family)."""
    body = {
        "success": False,
        "errors": [{"code": 10002, "message": "An unknown error has occurred"}],
        "messages": [],
        "result": None,
    }
    return "application/json", json.dumps(body).encode()


class Cloudflare:
    """Request handling for ``/client/v4``, separate from routing."""

    def __init__(self, state: CloudflareState, config: CloudflareConfig) -> None:
        self.state = state
        self.config = config
        self.rate_limit = config.rate_limit
        self.rate_window_s = config.rate_window_s

    # --- auth, rate and zone access --------------------------------------------------------
    def authenticate(self, request: Request) -> ApiToken:
        header = request.headers.get("authorization")
        if header is None:
            if request.headers.get("x-auth-key") or request.headers.get("x-auth-email"):
                raise _error(403, 9103, "Unknown X-Auth-Key or X-Auth-Email")
            raise _error(400, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not _TOKEN_FORMAT.fullmatch(value.strip()):
            raise _error(
                400,
                6003,
                "Invalid request headers",
                [(6111, "Invalid format for Authorization header")],
            )
        token = self.state.tokens.get(value.strip())
        if token is None or token.status != "active":
            raise _error(403, 10000, "Authentication error")
        wait = self.state.windows.setdefault(token.token, RateWindow()).admit(
            time.monotonic(), self.rate_limit, self.rate_window_s
        )
        if wait is not None:
            raise CloudflareError(
                429,
                [
                    {
                        "code": 971,
                        "message": "Please wait and consider throttling your request speed",
                    }
                ],
                headers={"retry-after": str(max(1, round(wait)))},
            )
        return token

    def zone_for(self, request: Request, zone_id: str) -> Zone:
        token = self.authenticate(request)
        zone = self.state.zones.get(zone_id) if _ZONE_ID_FORMAT.fullmatch(zone_id) else None
        if zone is None:
            raise CloudflareError(
                400,
                [
                    {
                        "code": 7003,
                        "message": (
                            f"Could not route to {request.url.path}, perhaps your object "
                            "identifier is invalid?"
                        ),
                    },
                    {"code": 7000, "message": "No route for that URI"},
                ],
            )
        if token.zones is not None and zone.id not in token.zones:
            raise _error(403, 10000, "Authentication error")
        return zone

    def record_in(self, zone: Zone, record_id: str) -> DnsRecord:
        record = self.state.records.get(record_id)
        if record is None or record.zone_id != zone.id:
            raise _error(404, 81044, "Record does not exist.")
        return record

    # --- endpoints -------------------------------------------------------------------------
    def verify_token(self, request: Request) -> dict[str, Any]:
        header = request.headers.get("authorization", "")
        token = self.state.tokens.get(header.partition(" ")[2].strip())
        if token is None:
            raise _error(401, 1000, "Invalid API Token")
        self.authenticate(request)
        return envelope(
            {"id": token.id, "status": token.status},
        ) | {"messages": [{"code": 10000, "message": "This API Token is valid and active"}]}

    def list_zones(self, request: Request) -> dict[str, Any]:
        token = self.authenticate(request)
        params = request.query_params
        zones = [
            z.as_dict()
            for z in self.state.zones.values()
            if (token.zones is None or z.id in token.zones)
            and (not params.get("name") or z.name == params["name"].lower())
        ]
        return _paginate(zones, params.get("page"), params.get("per_page"), default_per_page=20)

    def get_zone(self, request: Request, zone_id: str) -> dict[str, Any]:
        return envelope(self.zone_for(request, zone_id).as_dict())

    def list_records(self, request: Request, zone_id: str) -> dict[str, Any]:
        zone = self.zone_for(request, zone_id)
        params = dict(request.query_params)
        checks = _record_filters(params, zone)
        match_any = params.get("match") == "any"
        records = [
            r
            for r in self.state.zone_records(zone.id)
            if not checks or (any if match_any else all)(check(r) for check in checks)
        ]
        order = params.get("order")
        if order in _ORDERABLE:
            records.sort(
                key=lambda r: getattr(r, str(order)), reverse=params.get("direction") == "desc"
            )
        return _paginate(
            [r.as_dict() for r in records], params.get("page"), params.get("per_page"), 100
        )

    def get_record(self, request: Request, zone_id: str, record_id: str) -> dict[str, Any]:
        zone = self.zone_for(request, zone_id)
        return envelope(self.record_in(zone, record_id).as_dict())

    async def create_record(self, request: Request, zone_id: str) -> dict[str, Any]:
        zone = self.zone_for(request, zone_id)
        body = await _json_object(request)
        fields = _record_fields(body, zone, partial=False)
        self._refuse_conflicts(zone, fields["type"], fields["name"], fields["content"], None)
        now = time.time()
        record = DnsRecord(id=secrets.token_hex(16), zone_id=zone.id, **fields)
        record.created_on = record.modified_on = now
        if record.comment is not None:
            record.comment_modified_on = now
        if record.tags:
            record.tags_modified_on = now
        self.state.records[record.id] = record
        logger.info("cloudflare created %s %s -> %s", record.type, record.name, record.content)
        return envelope(record.as_dict())

    async def change_record(
        self, request: Request, zone_id: str, record_id: str, replace: bool
    ) -> dict[str, Any]:
        zone = self.zone_for(request, zone_id)
        record = self.record_in(zone, record_id)
        body = await _json_object(request)
        if replace:
            fields = _record_fields(body, zone, partial=False)
        else:
            merged = {
                "type": record.type,
                "name": record.name,
                "content": record.content,
                **body,
            }
            fields = _record_fields(merged, zone, partial=True)
        self._refuse_conflicts(zone, fields["type"], fields["name"], fields["content"], record.id)
        now = time.time()
        if fields.get("comment", record.comment) != record.comment:
            record.comment_modified_on = now
        if "tags" in fields and fields["tags"] != record.tags:
            record.tags_modified_on = now
        if replace:
            record.comment = None
            record.tags = []
            record.settings = {}
            record.priority = None
            record.ttl, record.proxied = 1, False
        for key, value in fields.items():
            setattr(record, key, value)
        record.modified_on = now
        return envelope(record.as_dict())

    def delete_record(self, request: Request, zone_id: str, record_id: str) -> dict[str, Any]:
        zone = self.zone_for(request, zone_id)
        record = self.record_in(zone, record_id)
        del self.state.records[record.id]
        logger.info("cloudflare deleted %s %s", record.type, record.name)
        return envelope({"id": record.id})

    def _refuse_conflicts(
        self, zone: Zone, rtype: str, name: str, content: str, exclude: str | None
    ) -> None:
        """Cloudflare's same-name rules: identical record, CNAME beside anything, A beside CNAME."""
        for other in self.state.zone_records(zone.id):
            if other.id == exclude or other.name != name:
                continue
            if other.type == rtype and other.content.lower() == content.lower():
                code = self.config.identical_record_code
                message = (
                    "The record already exists."
                    if code == 81057
                    else "An identical record already exists."
                )
                raise _error(400, code, message)
            if rtype == "CNAME" and other.type in ("A", "AAAA", "CNAME"):
                raise _error(
                    400,
                    81053,
                    "An A, AAAA, or CNAME record with that host already exists. For more "
                    "details, refer to <https://developers.cloudflare.com/dns/manage-dns-records/"
                    "troubleshooting/records-with-same-name/>.",
                )
            if rtype in ("A", "AAAA") and other.type == "CNAME":
                raise _error(400, 81054, "A CNAME record with that host already exists.")


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        raise _error(400, 9207, "Request body is invalid.") from None
    if not isinstance(body, dict):
        raise _error(400, 9207, "Request body is invalid.")
    return body


def fqdn(name: str, zone: Zone) -> str:
    """Cloudflare treats a name outside the zone as relative to it (``www`` = ``www.zone``)."""
    name = name.strip().lower().rstrip(".")
    if name in ("@", zone.name):
        return zone.name
    if name.endswith("." + zone.name):
        return name
    return f"{name}.{zone.name}"


def _record_fields(body: dict[str, Any], zone: Zone, partial: bool) -> dict[str, Any]:
    """Validate a record body; returns the fields to store (type, name, content always)."""
    rtype = body.get("type")
    if not isinstance(rtype, str) or rtype.upper() not in _RECORD_TYPES:
        raise _validation(9020, "Invalid DNS record type")
    rtype = rtype.upper()
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or not _HOSTNAME.fullmatch(name.strip()):
        raise _validation(9000, "DNS name is invalid.")
    content = body.get("content")
    if not isinstance(content, str) or not content.strip():
        raise _validation(9021, "Content is required.")
    content = content.strip()
    if rtype == "A" and not _IPV4.fullmatch(content):
        raise _validation(9005, "Content for A record is invalid. Must be a valid IPv4 address")
    if rtype == "CNAME":
        if not _HOSTNAME.fullmatch(content):
            raise _validation(9007, "Content for CNAME record is invalid.")
        content = content.lower().rstrip(".")
    fields: dict[str, Any] = {"type": rtype, "name": fqdn(name, zone), "content": content}
    return fields | _optional_fields(body, rtype, partial)


def _optional_fields(body: dict[str, Any], rtype: str, partial: bool) -> dict[str, Any]:
    """ttl, proxied, comment, tags, settings, priority; on PUT/POST absent ones get defaults."""
    fields: dict[str, Any] = {}
    if "ttl" in body or not partial:
        ttl = body.get("ttl", 1)
        if (
            not isinstance(ttl, int)
            or isinstance(ttl, bool)
            or not (ttl == 1 or 30 <= ttl <= 86400)
        ):
            raise _validation(
                9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic."
            )
        fields["ttl"] = ttl
    if "proxied" in body or not partial:
        proxied = body.get("proxied", False)
        if not isinstance(proxied, bool):
            raise _validation(9003, "Invalid 'proxied' value, must be a boolean")
        if proxied and rtype not in ("A", "AAAA", "CNAME"):
            raise _validation(9004, "This record type cannot be proxied.")
        fields["proxied"] = proxied
    if fields.get("proxied"):
        # Proxied records are always served with automatic TTL.
        fields["ttl"] = 1
    if "comment" in body:
        comment = body["comment"]
        if comment is not None and (not isinstance(comment, str) or len(comment) > 500):
            raise _validation(9101, "DNS record comment is invalid.")
        fields["comment"] = comment or None
    if "tags" in body:
        tags = body["tags"]
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise _validation(9102, "DNS record tags are invalid.")
        fields["tags"] = list(tags)
    if isinstance(body.get("settings"), dict):
        fields["settings"] = dict(body["settings"])
    if isinstance(body.get("priority"), int):
        fields["priority"] = body["priority"]
    return fields


def _text_filter(field: str, op: str, wanted: str) -> Callable[[DnsRecord], bool]:
    wanted = wanted.lower()

    def check(record: DnsRecord) -> bool:
        value = (getattr(record, field) or "").lower()
        if op == "exact":
            return bool(value == wanted)
        if op == "contains":
            return wanted in value
        if op == "startswith":
            return bool(value.startswith(wanted))
        if op == "endswith":
            return bool(value.endswith(wanted))
        if op == "present":
            return bool(value)
        return not value  # absent

    return check


def _record_filters(params: dict[str, str], zone: Zone) -> list[Callable[[DnsRecord], bool]]:
    """``name``/``content``/``comment`` with ``.exact``, ``.contains``...; ``type``; ``proxied``."""
    checks: list[Callable[[DnsRecord], bool]] = []
    for key, value in params.items():
        field, _, op = key.partition(".")
        if field not in ("name", "content", "comment"):
            continue
        op = op or "exact"
        if op not in ("exact", "contains", "startswith", "endswith", "present", "absent"):
            raise _error(400, 9106, f"Invalid filter {key}")
        wanted = fqdn(value, zone) if field == "name" and op == "exact" else value
        checks.append(_text_filter(field, op, wanted))
    if "type" in params:
        wanted_type = params["type"].upper()
        checks.append(lambda r: r.type == wanted_type)
    if "proxied" in params:
        wanted_proxied = params["proxied"].lower() == "true"
        checks.append(lambda r: r.proxied == wanted_proxied)
    return checks


def _paginate(
    rows: list[dict[str, Any]], page: str | None, per_page: str | None, default_per_page: int
) -> dict[str, Any]:
    try:
        page_n = max(1, int(float(page))) if page else 1
        size = int(float(per_page)) if per_page else default_per_page
    except ValueError:
        raise _error(400, 1001, "Invalid pagination parameters") from None
    if not 5 <= size <= 5_000_000:
        raise _error(400, 1001, "per_page must be between 5 and 5000000")
    chunk = rows[(page_n - 1) * size : page_n * size]
    return envelope(
        chunk,
        {
            "page": page_n,
            "per_page": size,
            "count": len(chunk),
            "total_count": len(rows),
            "total_pages": max(1, -(-len(rows) // size)),
        },
    )


# --- control API ---------------------------------------------------------------------------
class ZoneIn(BaseModel):
    name: str
    zone_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")


class TokenIn(BaseModel):
    token: str = Field(pattern=r"^[A-Za-z0-9_-]{40}$")
    #: Zone ids it may use; null = every zone.
    zones: list[str] | None = None
    status: TokenStatus = "active"


class RateIn(BaseModel):
    limit: int = Field(ge=1)
    window_s: float = Field(gt=0)


def create_app(
    config: CloudflareConfig | None = None,
    bootstrap: Callable[[CloudflareState], None] | None = None,
) -> FastAPI:
    """Build the fake. ``bootstrap`` registers the demo zone and token, again on every reset."""
    config = config or CloudflareConfig()
    state = CloudflareState(config.account_id)
    book = FaultBook()
    cloudflare = Cloudflare(state, config)

    def reset() -> None:
        state.reset()
        cloudflare.rate_limit, cloudflare.rate_window_s = config.rate_limit, config.rate_window_s
        if bootstrap is not None:
            bootstrap(state)

    reset()
    app = fake_app("Cloudflare API", book, reset, render_5xx)
    app.state.cloudflare = state

    @app.exception_handler(CloudflareError)
    async def cloudflare_error(request: Request, error: CloudflareError) -> Response:
        body = {"success": False, "errors": error.errors, "messages": [], "result": None}
        return JSONResponse(body, status_code=error.status, headers=error.headers)

    @app.middleware("http")
    async def ray_id(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        response.headers["cf-ray"] = f"{secrets.token_hex(8)}-GRU"
        return response

    _add_control_routes(app, state, cloudflare)
    _add_api_routes(app, cloudflare)
    return app


def _add_api_routes(app: FastAPI, cf: Cloudflare) -> None:
    records = API + "/zones/{zone_id}/dns_records"

    @app.get(API + "/user/tokens/verify")
    async def verify(request: Request) -> dict[str, Any]:
        return cf.verify_token(request)

    @app.get(API + "/zones")
    async def zones(request: Request) -> dict[str, Any]:
        return cf.list_zones(request)

    @app.get(API + "/zones/{zone_id}")
    async def zone(request: Request, zone_id: str) -> dict[str, Any]:
        return cf.get_zone(request, zone_id)

    @app.get(records)
    async def list_records(request: Request, zone_id: str) -> dict[str, Any]:
        return cf.list_records(request, zone_id)

    @app.post(records)
    async def create_record(request: Request, zone_id: str) -> dict[str, Any]:
        return await cf.create_record(request, zone_id)

    @app.get(records + "/{record_id}")
    async def get_record(request: Request, zone_id: str, record_id: str) -> dict[str, Any]:
        return cf.get_record(request, zone_id, record_id)

    @app.patch(records + "/{record_id}")
    async def patch_record(request: Request, zone_id: str, record_id: str) -> dict[str, Any]:
        return await cf.change_record(request, zone_id, record_id, replace=False)

    @app.put(records + "/{record_id}")
    async def put_record(request: Request, zone_id: str, record_id: str) -> dict[str, Any]:
        return await cf.change_record(request, zone_id, record_id, replace=True)

    @app.delete(records + "/{record_id}")
    async def delete_record(request: Request, zone_id: str, record_id: str) -> dict[str, Any]:
        return cf.delete_record(request, zone_id, record_id)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def no_route(path: str) -> Response:
        raise _error(400, 7000, "No route for that URI")


def _add_control_routes(app: FastAPI, state: CloudflareState, cf: Cloudflare) -> None:
    @app.post("/_sandbox/zones")
    async def add_zone(body: ZoneIn) -> dict[str, Any]:
        return state.add_zone(body.name, body.zone_id).as_dict()

    @app.get("/_sandbox/zones")
    async def list_zones() -> dict[str, Any]:
        return {"data": [z.as_dict() for z in state.zones.values()]}

    @app.post("/_sandbox/tokens")
    async def add_token(body: TokenIn) -> dict[str, Any]:
        token = state.add_token(
            body.token, set(body.zones) if body.zones is not None else None, body.status
        )
        return {"id": token.id, "zones": body.zones, "status": token.status}

    @app.get("/_sandbox/records")
    async def list_records(zone_id: str | None = None, name: str | None = None) -> dict[str, Any]:
        rows = [
            r.as_dict() | {"zone_id": r.zone_id}
            for r in state.records.values()
            if (zone_id is None or r.zone_id == zone_id)
            and (name is None or r.name == name.lower().rstrip("."))
        ]
        return {"data": rows, "total": len(rows)}

    @app.get("/_sandbox/resolve")
    async def resolve(name: str) -> dict[str, Any]:
        return {"name": name.lower().rstrip("."), "answers": state.resolve(name)}

    @app.post("/_sandbox/rate-limit")
    async def set_rate(body: RateIn) -> dict[str, Any]:
        cf.rate_limit, cf.rate_window_s = body.limit, body.window_s
        state.windows.clear()
        return {"limit": body.limit, "window_s": body.window_s}
