"""The Stape fake as a FastAPI app: API v2 containers and custom domains, plus ``/_sandbox``.

``/api/v2/...`` is the global host (api.app.stape.io), ``/eu/api/v2/...`` the EU one
(api.app.eu.stape.io); a key works only in its own region. Answers are wrapped ``{"body": ...}``;
validation errors are ``{"body": {"errors": {field: [message]}}}``, other errors
``{"error": {"code", "message", "description", "error"}}``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from trackai_sandbox.provider_faults import FaultBook, fake_app
from trackai_sandbox.stape.state import (
    ANONYMIZE_KEYS,
    ZONES,
    Behaviour,
    Container,
    Domain,
    Region,
    StapeState,
    option,
)

logger = logging.getLogger("trackai_sandbox.stape")

PREFIXES: dict[str, Region] = {"/api/v2": "global", "/eu/api/v2": "eu"}
_HOSTNAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_BLANK = "This value should not be blank."
#: Fields a container document keeps (PUT replaces them all; absent ones fall back to these).
_CONTAINER_DEFAULTS: dict[str, Any] = {
    "codeSettings": None,
    "anonymizeOptions": None,
    "previewHeader": None,
    "geoHeaders": False,
    "xmlToJsonEnabled": False,
    "delayEnabled": False,
    "stapeUserIdHeaderEnabled": False,
    "botIndexEnabled": False,
    "userAgentHeaders": False,
    "cookieKeeperOptions": None,
    "serviceAccountCredentials": None,
}


class StapeError(Exception):
    def __init__(self, status: int, message: str, description: str, kind: str) -> None:
        super().__init__(description)
        self.status = status
        self.payload = {
            "error": {"code": status, "message": message, "description": description, "error": kind}
        }


class StapeValidationError(Exception):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(json.dumps(errors))
        self.errors = errors


def _not_found(what: str) -> StapeError:
    return StapeError(404, "Not Found", f"{what} not found.", "not_found")


def render_5xx(status: int) -> tuple[str, bytes]:
    """A 500 from the application is JSON; 502/503 come from the proxy in front of it, as HTML."""
    if status == 500:
        body = {
            "error": {
                "code": 500,
                "message": "Internal Server Error",
                "description": "Something went wrong.",
                "error": "internal_error",
            }
        }
        return "application/json", json.dumps(body).encode()
    title = {502: "502 Bad Gateway", 503: "503 Service Temporarily Unavailable"}.get(
        status, f"{status} Gateway Time-out"
    )
    page = f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center>"
    return "text/html", (page + "<hr><center>nginx</center></body></html>").encode()


class Resolver:
    """What public DNS answers, as Stape's verifier sees it: overrides registered through the
    control API first, then the Cloudflare fake's ``/_sandbox/resolve`` (works across processes)."""

    def __init__(self, state: StapeState, cloudflare_url: str | None) -> None:
        self.state = state
        self.cloudflare_url = cloudflare_url

    async def lookup(self, name: str) -> list[dict[str, str]]:
        if name in self.state.dns:
            return self.state.dns[name]
        if not self.cloudflare_url:
            return []
        try:
            async with httpx.AsyncClient(base_url=self.cloudflare_url, timeout=2.0) as http:
                answer = await http.get("/_sandbox/resolve", params={"name": name})
                answer.raise_for_status()
        except httpx.HTTPError:
            logger.warning(
                "stape: DNS view of the Cloudflare fake unreachable; %s unresolved", name
            )
            return []
        answers: list[dict[str, str]] = answer.json()["answers"]
        return answers


def _verdict(domain: Domain, answers: list[dict[str, str]]) -> tuple[str, dict[str, str] | None]:
    cnames = [a["data"].lower().rstrip(".") for a in answers if a["type"] == "CNAME"]
    if domain.target in cnames:
        return "verified", None
    if cnames:
        return "failed", option(
            "wrong_record", f"CNAME points to {cnames[0]}, expected {domain.target}"
        )
    if any(a["type"] in ("A", "AAAA") for a in answers):
        return "failed", option(
            "proxied_record",
            "The domain resolves to addresses, not to the CNAME target: turn the CDN proxy off "
            "(DNS only)",
        )
    return "failed", option("record_not_found", "DNS record not found")


class Stape:
    """Request handling for API v2, separate from routing."""

    def __init__(self, state: StapeState, resolver: Resolver) -> None:
        self.state = state
        self.resolver = resolver

    def authenticate(self, request: Request, region: Region) -> None:
        key = request.headers.get("x-auth-token")
        if not key or self.state.keys.get(key) != region:
            # A key of the other region is unknown here: the regions do not share accounts.
            raise StapeError(401, "Unauthorized", "Invalid API key.", "unauthorized")

    def container(self, region: Region, identifier: str) -> Container:
        container = self.state.containers.get((region, identifier))
        if container is None:
            raise _not_found("Container")
        return container

    def domain(self, container: Container, identifier: str) -> Domain:
        domain = container.domains.get(identifier)
        if domain is None:
            raise _not_found("Domain")
        return domain

    def show(self, container: Container) -> dict[str, Any]:
        return container.as_dict(self.state.behaviour, time.monotonic())

    # --- containers ------------------------------------------------------------------------
    def list_containers(self, region: Region) -> list[dict[str, Any]]:
        return [self.show(c) for (r, _), c in self.state.containers.items() if r == region]

    def create_container(self, region: Region, body: dict[str, Any]) -> dict[str, Any]:
        container = self.state.new_container(region, _container_document(body))
        logger.info("stape created container %s (%s)", container.identifier, region)
        return self.show(container)

    def replace_container(
        self, region: Region, identifier: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        container = self.container(region, identifier)
        document = _container_document(body)
        container.document = document
        container.updated_at = time.time()
        return self.show(container)

    def delete_container(self, region: Region, identifier: str) -> None:
        container = self.container(region, identifier)
        del self.state.containers[(region, container.identifier)]
        logger.info("stape deleted container %s (%s)", identifier, region)

    # --- domains ---------------------------------------------------------------------------
    def list_domains(self, container: Container, params: dict[str, str]) -> dict[str, Any]:
        now = time.monotonic()
        rows = [d.as_dict(now) for d in container.domains.values()]
        if params.get("status"):
            rows = [r for r in rows if r["status"]["type"] == params["status"]]
        limit = int(params.get("limit") or params.get("perPage") or 20)
        page = max(1, int(params.get("page") or 1))
        offset = int(params.get("offset") or (page - 1) * limit)
        return {"items": rows[offset : offset + limit], "page": page, "perPage": limit,
                "total": len(rows)}  # fmt: skip

    def add_domain(self, region: Region, container: Container, body: dict[str, Any]) -> Domain:
        name = _domain_name(body)
        if self.state.domain_named(region, name) is not None:
            raise StapeError(409, "Conflict", f"Domain {name} already exists.", "domain_exists")
        domain = self.state.new_domain(container, name, body)
        logger.info("stape added domain %s to %s", name, container.identifier)
        return domain

    def replace_domain(self, region: Region, domain: Domain, body: dict[str, Any]) -> Domain:
        name = _domain_name(body)
        other = self.state.domain_named(region, name)
        if other is not None and other is not domain:
            raise StapeError(409, "Conflict", f"Domain {name} already exists.", "domain_exists")
        domain.name = name
        domain.cdn_type = body.get("cdnType")
        domain.use_cname_record = bool(body.get("useCnameRecord", True))
        domain.connection_type = body.get("connectionType")
        domain.status, domain.error, domain.outcome = "pending", None, None
        return domain

    async def revalidate(self, domain: Domain) -> Domain:
        answers = await self.resolver.lookup(domain.name)
        domain.verification_count += 1
        domain.status, domain.error = "verifying", None
        domain.outcome = _verdict(domain, answers)
        domain.verified_at = time.monotonic() + self.state.behaviour.verify_delay_s
        return domain


def _container_document(body: dict[str, Any]) -> dict[str, Any]:
    """Validate a create/replace body the way Stape's form does; the stored document."""
    errors: dict[str, list[str]] = {}
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        errors["name"] = [_BLANK]
    code = body.get("code")
    if not isinstance(code, str) or not code:
        errors["code"] = [_BLANK]
    elif len(code) < 64:
        errors["code"] = ["This value is too short. It should have 64 characters or more."]
    elif len(code) > 255:
        errors["code"] = ["This value is too long. It should have 255 characters or less."]
    zone = body.get("zone")
    if not isinstance(zone, dict) or not zone.get("type"):
        errors["zone"] = [_BLANK]
    elif zone["type"] not in ZONES:
        errors["zone.type"] = ["The value you selected is not a valid choice."]
    anonymize = body.get("anonymizeOptions")
    if not isinstance(anonymize, dict):
        errors["anonymizeOptions"] = [_BLANK]
    else:
        for key in ANONYMIZE_KEYS:
            if not isinstance(anonymize.get(key), str) or not anonymize[key]:
                errors[f"anonymizeOptions.{key}"] = [_BLANK]
    settings = body.get("codeSettings")
    if settings is not None and not isinstance(settings, dict):
        errors["codeSettings"] = ["This value is not valid."]
    if errors:
        raise StapeValidationError(errors)
    document = {key: body.get(key, default) for key, default in _CONTAINER_DEFAULTS.items()}
    document.update(name=str(name).strip(), code=code, zone={"type": zone["type"]})  # type: ignore[index]
    return document


def _domain_name(body: dict[str, Any]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise StapeValidationError({"name": [_BLANK]})
    name = name.strip().lower().rstrip(".")
    if not _HOSTNAME.fullmatch(name):
        raise StapeValidationError({"name": ["This value is not a valid hostname."]})
    return name


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        raise StapeError(400, "Bad Request", "Invalid JSON.", "bad_request") from None
    if not isinstance(body, dict):
        raise StapeError(400, "Bad Request", "Invalid JSON.", "bad_request")
    return body


def wrap(body: Any) -> dict[str, Any]:
    return {"body": body}


# --- control API ---------------------------------------------------------------------------
class KeyIn(BaseModel):
    key: str = Field(min_length=1)
    region: Region = "global"


class BehaviourIn(BaseModel):
    ready_after_s: float | None = Field(default=None, ge=0)
    never_running: bool | None = None
    verify_delay_s: float | None = Field(default=None, ge=0)


class StatusIn(BaseModel):
    #: Force this status type (e.g. "error"); null returns to the timed deploy.
    type: str | None
    label: str | None = None


class DnsIn(BaseModel):
    name: str
    #: ``[{"type": "CNAME", "data": "..."}]``; an empty list answers NXDOMAIN.
    answers: list[dict[str, str]]


def create_app(
    behaviour: Behaviour | None = None,
    cloudflare_url: str | None = None,
    bootstrap: Callable[[StapeState], None] | None = None,
) -> FastAPI:
    """Build the fake. ``cloudflare_url`` is the Cloudflare fake whose DNS view revalidation
    consults; ``bootstrap`` registers the demo keys at start and on every reset."""
    initial = behaviour or Behaviour()
    state = StapeState()
    book = FaultBook()
    stape = Stape(state, Resolver(state, cloudflare_url))

    def reset() -> None:
        state.reset(Behaviour(**vars(initial)))
        if bootstrap is not None:
            bootstrap(state)

    reset()
    app = fake_app("Stape API v2", book, reset, render_5xx)
    app.state.stape = state

    @app.exception_handler(StapeError)
    async def stape_error(request: Request, error: StapeError) -> Response:
        return JSONResponse(error.payload, status_code=error.status)

    @app.exception_handler(StapeValidationError)
    async def validation_error(request: Request, error: StapeValidationError) -> Response:
        return JSONResponse({"body": {"errors": error.errors}}, status_code=400)

    _add_control_routes(app, state, stape)
    for prefix, region in PREFIXES.items():
        _add_api_routes(app, stape, prefix, region)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def no_route(path: str) -> Response:
        raise StapeError(404, "Not Found", f'No route found for "/{path}"', "not_found")

    return app


def _add_api_routes(app: FastAPI, stape: Stape, prefix: str, region: Region) -> None:
    def route(
        method: str, path: str
    ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        def register(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            async def endpoint(request: Request) -> Response:
                stape.authenticate(request, region)
                result = await handler(request, **request.path_params)
                return JSONResponse(wrap(result))

            app.add_api_route(prefix + path, endpoint, methods=[method], name=f"{region}{path}")
            return handler

        return register

    containers = "/containers"
    one = containers + "/{identifier}"
    domains = one + "/domains"
    domain = domains + "/{domain}"

    @route("GET", containers)
    async def list_containers(request: Request) -> Any:
        return stape.list_containers(region)

    @route("POST", containers)
    async def create_container(request: Request) -> Any:
        return stape.create_container(region, await _json_object(request))

    @route("GET", one)
    async def get_container(request: Request, identifier: str) -> Any:
        return stape.show(stape.container(region, identifier))

    @route("PUT", one)
    async def put_container(request: Request, identifier: str) -> Any:
        return stape.replace_container(region, identifier, await _json_object(request))

    @route("DELETE", one)
    async def delete_container(request: Request, identifier: str) -> Any:
        stape.delete_container(region, identifier)
        return None

    @route("GET", domains)
    async def list_domains(request: Request, identifier: str) -> Any:
        container = stape.container(region, identifier)
        return stape.list_domains(container, dict(request.query_params))

    @route("POST", domains)
    async def add_domain(request: Request, identifier: str) -> Any:
        container = stape.container(region, identifier)
        added = stape.add_domain(region, container, await _json_object(request))
        return added.as_dict(time.monotonic())

    @route("GET", domain)
    async def get_domain(request: Request, identifier: str, domain: str) -> Any:
        found = stape.domain(stape.container(region, identifier), domain)
        return found.as_dict(time.monotonic())

    @route("PUT", domain)
    async def put_domain(request: Request, identifier: str, domain: str) -> Any:
        found = stape.domain(stape.container(region, identifier), domain)
        changed = stape.replace_domain(region, found, await _json_object(request))
        return changed.as_dict(time.monotonic())

    @route("DELETE", domain)
    async def delete_domain(request: Request, identifier: str, domain: str) -> Any:
        container = stape.container(region, identifier)
        del container.domains[stape.domain(container, domain).identifier]
        return None

    @route("POST", domain + "/revalidate")
    async def revalidate(request: Request, identifier: str, domain: str) -> Any:
        found = stape.domain(stape.container(region, identifier), domain)
        return (await stape.revalidate(found)).as_dict(time.monotonic())

    @route("GET", "/resources/container-zones")
    async def zones(request: Request) -> Any:
        return [option(zone, label) for zone, label in ZONES.items()]

    @route("GET", "/resources/container-anonymize-options")
    async def anonymize_options(request: Request) -> Any:
        choices = [option("n", "No"), option("r", "Remove"), option("a", "Anonymize")]
        return [{"title": "Anonymizer", "items": [
            {"label": key, "name": key, "hint": "", "options": choices} for key in ANONYMIZE_KEYS
        ]}]  # fmt: skip


def _add_control_routes(app: FastAPI, state: StapeState, stape: Stape) -> None:
    @app.post("/_sandbox/keys")
    async def add_key(body: KeyIn) -> dict[str, str]:
        state.keys[body.key] = body.region
        return {"region": body.region}

    @app.get("/_sandbox/behaviour")
    async def get_behaviour() -> dict[str, Any]:
        return vars(state.behaviour)

    @app.post("/_sandbox/behaviour")
    async def set_behaviour(body: BehaviourIn) -> dict[str, Any]:
        for key, value in body.model_dump(exclude_none=True).items():
            setattr(state.behaviour, key, value)
        return vars(state.behaviour)

    @app.post("/_sandbox/containers/{identifier}/status")
    async def force_status(identifier: str, body: StatusIn) -> dict[str, Any]:
        matches = [c for (_, i), c in state.containers.items() if i == identifier]
        if not matches:
            raise _not_found("Container")
        for container in matches:
            container.forced_status = None if body.type is None else option(body.type, body.label)
        return {"identifier": identifier, "status": stape.show(matches[0])["status"]}

    @app.get("/_sandbox/containers")
    async def list_all() -> dict[str, Any]:
        now = time.monotonic()
        rows = [
            stape.show(c)
            | {"region": c.region, "domains": [d.as_dict(now) for d in c.domains.values()]}
            for c in state.containers.values()
        ]
        return {"data": rows, "total": len(rows)}

    @app.post("/_sandbox/dns")
    async def set_dns(body: DnsIn) -> dict[str, Any]:
        state.dns[body.name.lower().rstrip(".")] = body.answers
        return {"name": body.name, "answers": body.answers}

    @app.delete("/_sandbox/dns")
    async def clear_dns() -> dict[str, Any]:
        state.dns.clear()
        return {"data": []}
