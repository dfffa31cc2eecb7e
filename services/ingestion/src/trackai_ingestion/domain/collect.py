"""Browser hits (collect endpoint): payload validation, Meta's fbc rule, the client IP behind
trusted proxies and the CORS decision. Pure functions; personal data is hashed here on arrival.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from trackai_kit import pii
from trackai_kit.addresses import IpAddress, is_public, parse_ip
from trackai_kit.redaction import REDACTED, is_sensitive_key, redact_text

#: Largest accepted request body: a hit is a few hundred bytes, 64 KiB leaves room for long URLs.
MAX_BODY_BYTES = 64 * 1024
#: A browser clock further off than this is ignored and the hit gets the server's receipt time.
CLIENT_CLOCK_TOLERANCE = timedelta(minutes=10)

HitKind = Literal["page_view", "lead", "checkout_start"]
#: Meta event name of each hit kind (stored in ``events.event_name``).
EVENT_NAMES: Mapping[HitKind, str] = {
    "page_view": "PageView",
    "lead": "Lead",
    "checkout_start": "InitiateCheckout",
}
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Ids minted by the tracking script (session and hit): URL-safe, short enough for `sck`/`src`.
_ID_PATTERN = r"^[A-Za-z0-9_.:-]{8,128}$"
# Meta's click id: URL-safe base64-like; a dot would break the fbc segments.
_FBCLID = r"^[A-Za-z0-9_-]{1,500}$"
# fb.<subdomain index>.<creation ms>.<fbclid>[.<appendix>] and fb.<index>.<ms>.<random>[.<appendix>]
_FBC_RE = re.compile(r"^fb\.(\d{1,2})\.(\d{1,16})\.([A-Za-z0-9_-]{1,500})(?:\.([^.\s]{1,200}))?$")
_FBP = r"^fb\.\d{1,2}\.\d{1,16}\.\d{1,20}(?:\.[^.\s]{1,200})?$"
#: The shape (and so the length limit: fbclid 500 characters, appendix 200) a click id must have
#: to be kept, on the collect path and on every gateway webhook: a longer or malformed value is
#: refused whole, never cut.
CLICK_ID_PATTERNS = {"fbclid": re.compile(_FBCLID), "fbc": _FBC_RE, "fbp": re.compile(_FBP)}

Token = Annotated[str, StringConstraints(strip_whitespace=True, pattern=_ID_PATTERN)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Url = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4096)]


class HitPayload(BaseModel):
    """The JSON the tracking script posts; unknown keys are ignored for forward compatibility."""

    model_config = ConfigDict(extra="ignore")

    type: HitKind
    session_id: Token
    event_id: Token
    #: Browser clock, Unix milliseconds.
    event_time: int | None = Field(None, ge=0, lt=10**14)
    page_url: Url
    referrer: Url | None = None
    fbclid: Annotated[str, StringConstraints(strip_whitespace=True, pattern=_FBCLID)] | None = None
    fbc: (
        Annotated[str, StringConstraints(strip_whitespace=True, pattern=_FBC_RE.pattern)] | None
    ) = None
    fbp: Annotated[str, StringConstraints(strip_whitespace=True, pattern=_FBP)] | None = None
    #: The script's stable visitor id (``_tai_vid``): 64 lowercase hex, Meta's ``external_id`` as
    #: the pixel receives it.
    visitor_id: (
        Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9a-f]{64}$")] | None
    ) = None
    utm_source: Text | None = None
    utm_medium: Text | None = None
    utm_campaign: Text | None = None
    utm_content: Text | None = None
    utm_term: Text | None = None
    src: Text | None = None
    sck: Text | None = None
    #: Funnel slug or id, as written in the snippet.
    funnel: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    # Lead form fields, plaintext only in memory: hashed by build_hit, never stored or logged.
    email: Annotated[str, StringConstraints(max_length=320)] | None = None
    phone: Annotated[str, StringConstraints(max_length=64)] | None = None


@dataclass(frozen=True)
class FieldError:
    """One problem with the payload; ``msg`` never quotes the submitted value."""

    loc: tuple[str | int, ...]
    msg: str
    type: str


class InvalidHit(ValueError):
    """The payload cannot become a hit; ``errors`` name every offending field."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors))
        self.errors = tuple(errors)


@dataclass(frozen=True)
class CollectTenant:
    """What the collect endpoint needs to know about a tenant."""

    tenant_id: str
    allowed_domains: tuple[str, ...]
    #: Funnel slug and id → funnel id.
    funnels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BrowserHit:
    """A validated hit, ready to store and publish; personal data only as SHA-256 hashes."""

    tenant_id: str
    kind: HitKind
    session_id: str
    event_id: str
    event_time: datetime
    page_url: str
    referrer: str | None
    fbclid: str | None
    fbc: str | None
    fbp: str | None
    utm: Mapping[str, str]
    src: str | None
    sck: str | None
    funnel_id: str | None
    email_hash: str | None
    phone_hash: str | None
    client_ip: str | None
    user_agent: str | None
    #: The visitor id, sent to Meta as ``external_id`` unchanged (already digest-shaped).
    visitor_id: str | None = None

    @property
    def event_name(self) -> str:
        return EVENT_NAMES[self.kind]


def _errors(exc: ValidationError) -> list[FieldError]:
    # Pydantic's own messages do not contain the input; its "input" entry is deliberately dropped.
    return [FieldError(tuple(error["loc"]), error["msg"], error["type"]) for error in exc.errors()]


def fbc_fbclid(fbc: str) -> str | None:
    """The click id inside an ``fbc`` value (its 4th segment), or None if it is not an fbc."""
    match = _FBC_RE.fullmatch(fbc)
    return match.group(3) if match else None


def resolve_fbc(fbclid: str | None, cookie_fbc: str | None, now_ms: int) -> str | None:
    """Meta's rule: keep the ``_fbc`` cookie unless a different fbclid arrives, then build one.

    A built value is ``fb.1.<now_ms>.<fbclid>``: subdomain index 1 as Meta asks of servers,
    milliseconds, the fbclid byte for byte (never lowercased). A kept value is returned unchanged,
    including a 5th "appendix" segment.
    """
    if fbclid:
        if cookie_fbc is not None and fbc_fbclid(cookie_fbc) == fbclid:
            return cookie_fbc
        return f"fb.1.{now_ms}.{fbclid}"
    return cookie_fbc


def parse_networks(cidrs: Iterable[str]) -> tuple[IpNetwork, ...]:
    """Trusted proxy networks from CIDR strings (a bare address is a /32 or /128)."""
    networks: list[IpNetwork] = []
    for cidr in cidrs:
        text = cidr.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ValueError(f"trusted proxy {text!r} is not an IP address or CIDR") from exc
    return tuple(networks)


def forwarded_client(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IpNetwork]
) -> IpAddress | None:
    """The address the request came from: the peer, or, when the peer is a trusted proxy, the
    first address from the right of ``X-Forwarded-For`` that is not a trusted proxy.

    Entries left of an untrusted hop are ignored (anyone can write them). An unparsable entry
    ends the walk with no answer rather than blaming a proxy's address on the visitor; when every
    hop is trusted, the leftmost one is the client.
    """
    address = parse_ip(peer) if peer else None
    if address is None:
        return None

    def is_trusted(ip: IpAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in trusted)

    if is_trusted(address):
        hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
        for hop in reversed(hops):
            parsed = parse_ip(hop)
            if parsed is None:
                return None
            address = parsed
            if not is_trusted(address):
                break
    return address


def sender_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IpNetwork]
) -> str | None:
    """Who sent the request, public or not (logs, per-source limits); the peer as a fallback."""
    address = forwarded_client(peer, forwarded_for, trusted)
    return str(address) if address is not None else peer


def rate_key(address: IpAddress | None) -> str | None:
    """The per-client rate-limit key of a sender: a public IPv4 address itself, a public IPv6
    address's /64 (one subscriber's prefix: a client gets a whole /64 and may rotate within it);
    ``None`` for a private or reserved address (a proxy whose ``X-Forwarded-For`` is not trusted,
    or internal traffic), which must not lump every visitor behind it into one budget."""
    if address is None or not is_public(address):
        return None
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def client_ip(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IpNetwork]
) -> str | None:
    """The visitor's address (:func:`forwarded_client`) when it is a public one, else ``None``.

    Behind an unconfigured load balancer the peer is the balancer's private address, which must
    not become every visitor's IP (trackai_kit/addresses.py says which addresses are public).
    """
    address = forwarded_client(peer, forwarded_for, trusted)
    return str(address) if address is not None and is_public(address) else None


def _host(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    return host.rstrip(".").lower()


def request_origin(origin: str | None, referer: str | None) -> str | None:
    """The page's origin: the ``Origin`` header, else the ``Referer``'s scheme and host."""
    if origin and origin != "null":
        return origin
    if referer:
        try:
            parts = urlsplit(referer)
        except ValueError:
            return None
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}"
    return None


def origin_allowed(origin: str | None, allowed_domains: Iterable[str]) -> bool:
    """True when the origin's host is one of the tenant's domains or a subdomain of one.

    Ports are ignored (a domain is the unit a tenant controls); only http(s) origins qualify.
    """
    host = _host(origin) if origin else None
    if host is None:
        return False
    for domain in allowed_domains:
        allowed = domain.strip().rstrip(".").lower()
        if allowed and (host == allowed or host.endswith("." + allowed)):
            return True
    return False


# Form fields that land in URLs when a lead form submits with GET (beyond the kit's personal and
# credential keys): their values are personal data whatever they look like.
_URL_PERSONAL_KEYS = frozenset(
    {
        "name", "nome", "first_name", "firstname", "last_name", "lastname", "sobrenome",
        "whatsapp", "zap", "tel", "fone", "address", "endereco", "cep", "zip", "birthdate",
        "nascimento",
    }
)  # fmt: skip


def _scrub_params(text: str) -> tuple[str, bool]:
    pairs = parse_qsl(text, keep_blank_values=True)
    changed = False
    scrubbed: list[tuple[str, str]] = []
    for key, value in pairs:
        personal = bool(value) and (
            key.lower() in _URL_PERSONAL_KEYS
            or is_sensitive_key(key)
            or redact_text(value) != value
        )
        changed = changed or personal
        scrubbed.append((key, REDACTED if personal else value))
    return (urlencode(scrubbed) if changed else text), changed


def scrub_url(url: str) -> str:
    """``url`` without personal data: e-mails, phones, names, documents and secrets in the query
    or fragment (a lead form sent with GET puts them there) are replaced by ``[REDACTED]``.

    The URL is returned byte for byte when nothing is found. Should anything remain elsewhere
    (the path), only the origin and the redacted path are kept.
    """
    parts = urlsplit(url)
    query, query_changed = _scrub_params(parts.query)
    fragment, fragment_changed = (
        _scrub_params(parts.fragment) if "=" in parts.fragment else (parts.fragment, False)
    )
    if query_changed or fragment_changed:
        url = urlunsplit(parts._replace(query=query, fragment=fragment))
    decoded = unquote_plus(url)
    if redact_text(decoded) != decoded:
        return f"{parts.scheme}://{parts.netloc}{redact_text(unquote_plus(parts.path))}"
    return url


def _resolve_funnel(ref: str | None, tenant: CollectTenant) -> str | None:
    if not ref:
        return None
    funnel_id = tenant.funnels.get(ref) or tenant.funnels.get(ref.lower())
    if funnel_id is None:
        raise InvalidHit([FieldError(("funnel",), "unknown funnel for this tenant", "unknown")])
    return funnel_id


def _lead_hashes(payload: HitPayload) -> tuple[str | None, str | None]:
    em = pii.email_hash(payload.email) if payload.email else None
    ph = pii.phone_hash(payload.phone) if payload.phone else None
    errors: list[FieldError] = []
    if payload.email and em is None:
        errors.append(FieldError(("email",), "not a valid e-mail address", "value_error"))
    if payload.phone and ph is None:
        errors.append(FieldError(("phone",), "not a valid phone number", "value_error"))
    if em is None and ph is None:
        if not errors:
            errors.append(
                FieldError(("email",), "a lead needs an e-mail address or a phone", "missing")
            )
        raise InvalidHit(errors)
    # One usable identifier is enough: a typo in the other field should not lose the lead.
    return em, ph


def build_hit(
    raw: object,
    *,
    tenant: CollectTenant,
    client_ip: str | None,
    user_agent: str | None,
    received_at: datetime,
) -> BrowserHit:
    """Validate a decoded JSON body into a :class:`BrowserHit`; raises :class:`InvalidHit`."""
    if not isinstance(raw, Mapping):
        raise InvalidHit([FieldError((), "the body must be a JSON object", "type_error")])
    try:
        payload = HitPayload.model_validate(raw)
    except ValidationError as exc:
        raise InvalidHit(_errors(exc)) from None
    if _host(payload.page_url) is None:
        raise InvalidHit([FieldError(("page_url",), "must be an http(s) URL", "value_error")])
    funnel_id = _resolve_funnel(payload.funnel, tenant)
    em, ph = _lead_hashes(payload) if payload.type == "lead" else (None, None)
    event_time = received_at
    if payload.event_time is not None:
        reported = datetime.fromtimestamp(payload.event_time / 1000, UTC)
        if abs(reported - received_at) <= CLIENT_CLOCK_TOLERANCE:
            event_time = reported
    # Campaign tags are free text a page can fill with anything (an e-mail in utm_content): they
    # are stored with e-mails, phones and documents replaced, like URLs.
    utm = {key: redact_text(value) for key in UTM_KEYS if (value := getattr(payload, key))}
    return BrowserHit(
        tenant_id=tenant.tenant_id,
        kind=payload.type,
        session_id=payload.session_id,
        event_id=payload.event_id,
        event_time=event_time,
        page_url=scrub_url(payload.page_url),
        referrer=scrub_url(payload.referrer) if payload.referrer else None,
        fbclid=payload.fbclid,
        fbc=resolve_fbc(payload.fbclid, payload.fbc, int(received_at.timestamp() * 1000)),
        fbp=payload.fbp,
        utm=utm,
        src=redact_text(payload.src) if payload.src else None,
        sck=redact_text(payload.sck) if payload.sck else None,
        funnel_id=funnel_id,
        email_hash=em,
        phone_hash=ph,
        client_ip=client_ip,
        user_agent=user_agent[:1000] if user_agent else None,
        visitor_id=payload.visitor_id,
    )
