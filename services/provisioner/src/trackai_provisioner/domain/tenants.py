"""Tenants, funnels and credential kinds, with the validation rules an operator sees."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

SLUG_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
PIXEL_ID_RE = re.compile(r"^[0-9]{5,20}$")
TEST_EVENT_CODE_RE = re.compile(r"^[A-Za-z0-9]{1,32}$")

#: Checkout platforms whose webhooks ingestion can verify. Adding one is a new adapter there and a
#: name here.
GATEWAYS = (
    "kiwify",
    "perfectpay",
    "hotmart",
    "eduzz",
    "cakto",
    "monetizze",
    "braip",
    "ticto",
    "greenn",
)

DEFAULT_LOOKBACK_DAYS = 30

#: Meta events a funnel may send for a pending pix/boleto (the matcher's ``PENDING_EVENTS``);
#: no value means nothing is sent until the payment is approved.
PENDING_PAYMENT_EVENTS = ("InitiateCheckout", "AddPaymentInfo")


class ValidationError(ValueError):
    """An operator-supplied value breaks a rule; the message says which and how to fix it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


class NotFoundError(LookupError):
    """The referenced tenant or funnel does not exist."""


class AlreadyExistsError(ValueError):
    """A tenant or funnel with that slug already exists."""


def validate_slug(value: str, field_name: str = "slug") -> str:
    slug = value.strip()
    if not SLUG_RE.match(slug):
        raise ValidationError(
            field_name,
            f"{value!r} is not a valid slug: use 1-40 lowercase letters, digits or hyphens, "
            "starting and ending with a letter or digit (it becomes a DNS label)",
        )
    return slug


def validate_name(value: str) -> str:
    name = value.strip()
    if not 1 <= len(name) <= 200:
        raise ValidationError("name", "must have between 1 and 200 characters")
    return name


def validate_domains(values: list[str], field_name: str = "allowed_domains") -> list[str]:
    out: list[str] = []
    for raw in values:
        domain = raw.strip().lower().rstrip(".")
        if not DOMAIN_RE.match(domain):
            raise ValidationError(field_name, f"{raw!r} is not a host name like 'shop.example.com'")
        if domain not in out:
            out.append(domain)
    return out


def validate_rate_limit(value: int | None) -> int | None:
    if value is None or value == 0:
        return None
    if not 1 <= value <= 100_000:
        raise ValidationError("rate_limit_per_minute", "must be between 1 and 100000 (0 = default)")
    return value


def validate_gateway(value: str) -> str:
    gateway = value.strip().lower()
    if gateway not in GATEWAYS:
        raise ValidationError(
            "gateway", f"unknown gateway {value!r}; supported: {', '.join(GATEWAYS)}"
        )
    return gateway


def validate_secret(value: str, field_name: str) -> str:
    secret = value.strip()
    if len(secret) < 8:
        raise ValidationError(
            field_name,
            "is too short (at least 8 characters); copy it again from the gateway's panel",
        )
    if len(secret) > 512:
        raise ValidationError(field_name, "is longer than 512 characters")
    return secret


def validate_pixel_id(value: str) -> str:
    pixel = value.strip()
    if not PIXEL_ID_RE.match(pixel):
        raise ValidationError(
            "pixel_id", f"{value!r} is not a Meta pixel (dataset) id: it is 5-20 digits"
        )
    return pixel


def validate_test_event_code(value: str) -> str | None:
    code = value.strip()
    if not code:
        return None
    if not TEST_EVENT_CODE_RE.match(code):
        raise ValidationError(
            "test_event_code", "must be the letters and digits shown in Events Manager (TEST12345)"
        )
    return code


def validate_lookback_days(value: int) -> int:
    if value == 0:
        return DEFAULT_LOOKBACK_DAYS
    if not 1 <= value <= 90:
        raise ValidationError("lookback_days", "must be between 1 and 90 (0 = default of 30)")
    return value


def validate_landing_url(value: str) -> str | None:
    url = value.strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("landing_url", f"{value!r} is not an absolute http(s) URL")
    return url


def validate_pending_payment_event(value: str) -> str | None:
    event = value.strip()
    if not event:
        return None
    if event not in PENDING_PAYMENT_EVENTS:
        raise ValidationError(
            "pending_payment_event",
            f"{value!r} is not one of {', '.join(PENDING_PAYMENT_EVENTS)} (empty = send nothing "
            "for a pending pix/boleto)",
        )
    return event


def _checkout_domains(values: list[str]) -> list[str]:
    return validate_domains(values, "checkout_domains")


#: Fields UpdateTenant may change, each with the validator that also turns the zero value into
#: the reset (rate limit 0 → service default, no domains → cleared).
TENANT_UPDATABLE: Mapping[str, Callable[[Any], Any]] = {
    "name": validate_name,
    "rate_limit_per_minute": validate_rate_limit,
    "allowed_domains": validate_domains,
}

#: Fields UpdateFunnel may change (the slug is the funnel's identity and never changes).
FUNNEL_UPDATABLE: Mapping[str, Callable[[Any], Any]] = {
    "name": validate_name,
    "lookback_days": validate_lookback_days,
    "landing_url": validate_landing_url,
    "checkout_domains": _checkout_domains,
    "test_event_code": validate_test_event_code,
    "pending_payment_event": validate_pending_payment_event,
}


def validated_changes(
    requested: Mapping[str, Any], updatable: Mapping[str, Callable[[Any], Any]]
) -> dict[str, Any]:
    """The validated new values of the fields named in an update mask.

    A field absent from ``requested`` keeps its value; a field present with its zero value is
    reset by its validator. An empty request or an unknown field name is refused.
    """
    allowed = ", ".join(updatable)
    if not requested:
        raise ValidationError("update_mask", f"name at least one field to change: {allowed}")
    unknown = sorted(set(requested) - set(updatable))
    if unknown:
        raise ValidationError(
            "update_mask", f"cannot update {', '.join(unknown)}; updatable fields: {allowed}"
        )
    return {name: updatable[name](value) for name, value in requested.items()}


@dataclass(frozen=True)
class Tenant:
    id: uuid.UUID
    slug: str
    name: str
    rate_limit_per_minute: int | None
    allowed_domains: list[str]
    created_at: datetime
    configured_gateways: list[str] = field(default_factory=list)
    meta_configured: bool = False


@dataclass(frozen=True)
class Funnel:
    id: uuid.UUID
    tenant_id: uuid.UUID
    slug: str
    name: str
    lookback_days: int
    landing_url: str | None
    checkout_domains: list[str]
    test_event_code: str | None
    pixel_id: str | None = None
    pending_payment_event: str | None = None


@dataclass(frozen=True)
class GatewayCredential:
    gateway: str
    secret: str
    signing_secret: str | None


@dataclass(frozen=True)
class MetaDestination:
    pixel_id: str
    access_token: str
    test_event_code: str | None


@dataclass(frozen=True)
class BrokenCredential:
    """A stored credential that cannot be opened (wrong or missing key, tampered row)."""

    kind: str
    provider: str
    funnel_id: uuid.UUID | None
    error: str


@dataclass(frozen=True)
class MetaPixel:
    """A Meta destination without its token (what callers that send nothing to Meta see)."""

    pixel_id: str
    test_event_code: str | None


@dataclass(frozen=True)
class TenantView:
    """A tenant, its funnels and Meta pixels: nothing secret."""

    tenant: Tenant
    meta: MetaPixel | None
    funnels: list[tuple[Funnel, MetaPixel | None]]


@dataclass(frozen=True)
class TenantConfig:
    tenant: Tenant
    gateways: list[GatewayCredential]
    meta: MetaDestination | None
    funnels: list[tuple[Funnel, MetaDestination | None]]
    #: Left out of the above; every other credential of the tenant still works.
    broken: list[BrokenCredential] = field(default_factory=list)


#: Secrets shorter than this show nothing: 4 characters would be too large a share of them.
MASK_MIN_LENGTH = 12


def last4(secret: str | None) -> str:
    """The last 4 characters of ``secret`` for people to recognise it; empty when it is short."""
    if not secret or len(secret) < MASK_MIN_LENGTH:
        return ""
    return secret[-4:]


def without_tokens(config: TenantConfig) -> TenantView:
    """The view of an opened config: Meta destinations reduced to their pixels."""

    def pixel(meta: MetaDestination | None) -> MetaPixel | None:
        return None if meta is None else MetaPixel(meta.pixel_id, meta.test_event_code)

    return TenantView(config.tenant, pixel(config.meta), [(f, pixel(m)) for f, m in config.funnels])


def destination_for(config: TenantConfig, funnel_id: str, pixel_id: str) -> MetaDestination | None:
    """The destination that delivers ``pixel_id`` for ``funnel_id`` (or the tenant default).

    A funnel with its own destination uses its token; otherwise the tenant default applies, then
    any other funnel's destination with that pixel. The funnel's test event code wins over the
    destination's. None when no destination reaches the pixel (the event cannot be sent).
    """
    funnel_code: str | None = None
    candidates: list[MetaDestination] = []
    for funnel, meta in config.funnels:
        if funnel_id and str(funnel.id) == funnel_id:
            funnel_code = funnel.test_event_code
            if meta is not None:
                candidates.append(meta)
    if config.meta is not None:
        candidates.append(config.meta)
    candidates.extend(meta for _, meta in config.funnels if meta is not None)
    for destination in candidates:
        if destination.pixel_id == pixel_id and destination.access_token:
            return MetaDestination(
                destination.pixel_id,
                destination.access_token,
                funnel_code or destination.test_event_code,
            )
    return None


def credential_associated_data(
    tenant_id: uuid.UUID, kind: str, provider: str, funnel_id: uuid.UUID | None
) -> bytes:
    """Bytes bound into each sealed credential so a row cannot be moved to another scope."""
    return f"trackai:cred:v1|{tenant_id}|{kind}|{provider}|{funnel_id or '-'}".encode()
