"""The interface every checkout-gateway adapter implements, and the parsing helpers they share.

An adapter authenticates a request on its raw bytes and turns the parsed body into an
:class:`~trackai_ingestion.domain.model.Interpretation`; it does no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from trackai_ingestion.domain.collect import CLICK_ID_PATTERNS
from trackai_ingestion.domain.gateways.body import parse_json_object
from trackai_ingestion.domain.model import (
    Accept,
    AuthenticationFailed,
    CanonicalStatus,
    HashedUserData,
    Ignore,
    InvalidPayload,
    MalformedBody,
    PaymentMethod,
    Tracking,
)
from trackai_kit.addresses import public_ip
from trackai_kit.pii import DateOrder, hash_user_data
from trackai_kit.redaction import redact_text

#: Brazilian gateways that send local time without an offset mean Brasília time.
BRASILIA = ZoneInfo("America/Sao_Paulo")
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MAX_TEXT = 200
#: What some checkouts write instead of leaving a tracking field out.
_PLACEHOLDERS = frozenset({"null", "undefined", "não informado"})
#: Event times outside these years are refused: no sale of ours happened before 2000 nor is one
#: dated in the next century (and converting 9999-12-31 to UTC overflows).
EARLIEST_YEAR = 2000
LATEST_YEAR = 2099
#: ``ingestion.events.amount`` is numeric(18, 4).
_MAX_AMOUNT = Decimal(10) ** 14


class WebhookRequest:
    """What arrived: the raw bytes (authenticated as is), headers (lower-case names), query.

    ``query`` is every (name, value) pair in order, so a repeated parameter stays visible.
    """

    def __init__(
        self,
        raw: bytes,
        headers: Mapping[str, str],
        query: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> None:
        self.raw = raw
        self.headers = {name.lower(): value for name, value in headers.items()}
        pairs = query.items() if isinstance(query, Mapping) else (query or ())
        self.query_items = [(str(name), str(value)) for name, value in pairs]
        self._parsed: dict[str, Any] | MalformedBody | None = None

    def header_values(self, name: str) -> list[str]:
        """Every value of a header; repeated header lines arrive joined by commas (RFC 9110)."""
        value = self.headers.get(name.lower())
        if value is None:
            return []
        return [item.strip() for item in value.split(",") if item.strip()]

    def query_values(self, name: str) -> list[str]:
        """Every value of a query parameter, in order."""
        return [value for key, value in self.query_items if key == name]

    @property
    def body(self) -> dict[str, Any]:
        """The checked JSON object (:func:`~.body.parse_json_object`), parsed once; decimals stay
        exact (``Decimal``). Raises :class:`MalformedBody`, and nothing else."""
        if self._parsed is None:
            try:
                self._parsed = parse_json_object(self.raw)
            except MalformedBody as exc:
                self._parsed = exc
        if isinstance(self._parsed, MalformedBody):
            raise self._parsed
        return self._parsed


class GatewayAdapter(ABC):
    """One checkout platform: how it authenticates, and how its payloads read.

    Adding a platform is one subclass in its own module, registered in
    :data:`trackai_ingestion.domain.gateways.ADAPTERS`, plus its tests.
    """

    #: URL slug (``/api/v1/webhooks/<name>/...``) and the ``gateway`` of its conversions.
    name: ClassVar[str]
    display_name: ClassVar[str]
    #: Where the operator finds the secret to store, quoted in 401 answers.
    credential_location: ClassVar[str]
    #: Media types accepted besides JSON (Monetizze posts a form), read by :meth:`parse`.
    other_media_types: ClassVar[frozenset[str]] = frozenset()
    #: The buyer's country when the payload names none: ``"br"`` only for a gateway that sells
    #: in Brazil only; None for one with international checkouts (then a phone number without a
    #: country code is not read at all). Per gateway in docs/emq.md.
    default_country: ClassVar[str | None] = "br"
    #: How the gateway writes a birth date whose day and month could be swapped.
    date_order: ClassVar[DateOrder] = "dmy"

    @abstractmethod
    def authenticate(self, request: WebhookRequest, secret: str) -> None:
        """Raise :class:`AuthenticationFailed` unless the request carries ``secret``."""

    @abstractmethod
    def interpret(self, body: Mapping[str, Any]) -> Accept | Ignore:
        """Normalise the parsed body; raise :class:`InvalidPayload` naming the bad field."""

    def parse(self, request: WebhookRequest) -> dict[str, Any]:
        """The body as an object (JSON for most gateways; Monetizze overrides it for its form
        encoding). Raises :class:`MalformedBody`."""
        return request.body

    def check_body_secret(
        self, request: WebhookRequest, key: str, secret: str, *, what: str
    ) -> None:
        """For gateways that put a static secret in the body (Perfect Pay, Cakto, ...): the body
        is parsed to read it, and nothing else of it is looked at before it matches."""
        received = self.parse(request).get(key)
        credential = f"{self.name}_{key}"
        if not isinstance(received, str) or not received:
            raise AuthenticationFailed(
                credential,
                f"missing `{key}` in the {self.display_name} payload: {self.display_name} sends "
                f"its {what} in the body; check that this URL is configured as a "
                f"{self.display_name} webhook",
            )
        if not secrets_match(received.strip(), secret):
            raise AuthenticationFailed(
                credential,
                f"{self.display_name} {key} does not match the {what} stored for this tenant; "
                f"copy it from {self.credential_location}",
            )

    def fix_hint(self, tenant_id: str) -> str:
        """The command that stores the right secret, for 401 messages."""
        return (
            f"store it with `trackai tenant set-gateway {tenant_id} --gateway {self.name} "
            "--secret-file -` (the secret on standard input)"
        )


def secrets_match(received: str | bytes | None, expected: str) -> bool:
    """Constant-time comparison; a missing value never matches (nor does an empty secret)."""
    if received is None or not expected:
        return False
    # surrogatepass: odd text (a header decoded as Latin-1, a lone surrogate) compares unequal
    # instead of raising; the comparison itself never fails.
    given = received.encode("utf-8", "surrogatepass") if isinstance(received, str) else received
    return hmac.compare_digest(given, expected.encode("utf-8", "surrogatepass"))


def only_one(values: list[str], credential: str, what: str) -> str:
    """The one credential value a gateway sends (``values`` is not empty). Several are refused:
    each would be one more guess per request, and which one counts would be ambiguous."""
    if len(values) > 1:
        raise AuthenticationFailed(credential, f"{len(values)} {what}")
    return values[0]


def hmac_hex(algorithm: str, key: str, raw: bytes) -> str:
    return hmac.new(key.encode(), raw, algorithm).hexdigest()


def signature_matches(received: str | None, algorithm: str, key: str, raw: bytes) -> bool:
    """Whether ``received`` (hex, any case) is HMAC-``algorithm`` of ``raw`` under ``key``."""
    if received is None or not key:
        return False
    return secrets_match(received.strip().lower(), hmac_hex(algorithm, key, raw))


#: Seconds a timestamped relay signature stays valid, either side of our clock.
RELAY_SIGNATURE_TOLERANCE_S = 300


def relay_signature(signing_secret: str, raw: bytes, timestamp: int) -> str:
    """The ``X-Signature`` value a relay sends: ``t=<unix s>,v1=<hex HMAC-SHA256 of "<t>.<body>">``.

    The timestamp is inside the HMAC, so a captured delivery cannot be replayed once it is
    older than the tolerance, nor re-dated without the secret.
    """
    signed = str(timestamp).encode() + b"." + raw
    return f"t={timestamp},v1={hmac_hex('sha256', signing_secret, signed)}"


def verify_relay_signature(
    request: WebhookRequest,
    signing_secret: str,
    tenant_id: str,
    *,
    now: float,
    tolerance_s: float = RELAY_SIGNATURE_TOLERANCE_S,
    accept_legacy: bool = False,
) -> None:
    """The relay's ``X-Signature``, required when the tenant's gateway has a signing secret.

    ``t=<unix>,v1=<hex>`` (see :func:`relay_signature`) within ``tolerance_s`` of ``now``; the
    older ``sha256=<hex HMAC-SHA256 of the raw body>``, which replays forever, only with
    ``accept_legacy`` (INGESTION_LEGACY_RELAY_SIGNATURE).
    """
    # Eduzz's own signature travels in a header of the same name (bare hex): ours are the values
    # with a ``t=``/``v1=``/``sha256=`` prefix, so a relay in front of Eduzz sends both lines.
    values = request.header_values("x-signature")
    stamps = [v[2:].strip() for v in values if v[:2].lower() == "t="]
    v1 = [v[3:] for v in values if v[:3].lower() == "v1="]
    legacy = [v[7:] for v in values if v[:7].lower() == "sha256="]
    set_it = (
        "configure the relay with that secret, or remove it with `trackai tenant "
        f"set-gateway {tenant_id} ...` without --signing-secret-file"
    )
    if stamps or v1:
        if len(stamps) != 1 or not v1 or not stamps[0].isdigit():
            raise AuthenticationFailed(
                "x_signature",
                "malformed X-Signature: expected `t=<unix seconds>,v1=<hex HMAC-SHA256 of "
                '"<t>.<raw body>">` with exactly one t',
                reason="malformed",
            )
        age = now - int(stamps[0])
        if age > tolerance_s:
            raise AuthenticationFailed(
                "x_signature",
                f"stale X-Signature timestamp: signed {age:.0f} s ago, more than the "
                f"{tolerance_s:.0f} s accepted; the relay must sign each delivery when it sends "
                "it (check its clock)",
                reason="stale",
            )
        if -age > tolerance_s:
            raise AuthenticationFailed(
                "x_signature",
                f"X-Signature timestamp is {-age:.0f} s in the future, more than the "
                f"{tolerance_s:.0f} s accepted; check the relay's clock",
                reason="future",
            )
        signed = stamps[0].encode() + b"." + request.raw
        if not any(signature_matches(v, "sha256", signing_secret, signed) for v in v1):
            raise AuthenticationFailed(
                "x_signature",
                "X-Signature does not match the signing secret stored for this tenant and "
                'gateway (expected v1 = hex HMAC-SHA256 of "<t>.<raw body>"); check the relay\'s '
                f"key against `trackai tenant set-gateway {tenant_id} --signing-secret-file ...`",
            )
        return
    if legacy and not accept_legacy:
        raise AuthenticationFailed(
            "x_signature",
            "X-Signature `sha256=` has no timestamp, so anyone who saw one delivery could replay "
            'it: sign `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` instead '
            "(INGESTION_LEGACY_RELAY_SIGNATURE=true accepts the old form while relays migrate)",
            reason="legacy_refused",
        )
    if not legacy:
        raise AuthenticationFailed(
            "x_signature",
            "missing X-Signature header: this tenant has a signing secret for this gateway, so "
            "every webhook must carry `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "
            f'"<t>.<raw body>">`; {set_it}',
            reason="missing",
        )
    if not any(signature_matches(v, "sha256", signing_secret, request.raw) for v in legacy):
        raise AuthenticationFailed(
            "x_signature",
            "X-Signature does not match the signing secret stored for this tenant and gateway "
            "(expected `sha256=<hex HMAC-SHA256 of the raw body>`); check the relay's key against "
            f"`trackai tenant set-gateway {tenant_id} --signing-secret-file ...`",
        )


# -- reading fields --------------------------------------------------------------------------


def get_path(body: Mapping[str, Any], path: str) -> Any:
    """``a.b.c`` inside nested objects; ``None`` when any step is missing or not an object."""
    node: Any = body
    for part in path.split("."):
        # Parsed JSON objects are dicts: the exact type test spares the ABC check (hot path).
        if type(node) is not dict and not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def text(value: Any) -> str | None:
    """A scalar as trimmed text; ``None`` for null, empty, objects and lists."""
    if type(value) is str:
        result = value.strip()
    elif value is None or isinstance(value, bool | Mapping | list):
        return None
    elif isinstance(value, Decimal):
        result = format(value, "f").strip()
    else:
        result = str(value).strip()
    return result[:_MAX_TEXT] if result else None


def opt_text(body: Mapping[str, Any], path: str) -> str | None:
    return text(get_path(body, path))


def require_text(body: Mapping[str, Any], path: str) -> str:
    value = opt_text(body, path)
    if value is None:
        raise InvalidPayload(path, "is required")
    return value


def require_object(body: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    value = get_path(body, path)
    if not isinstance(value, Mapping):
        raise InvalidPayload(path, "is required and must be an object")
    return value


def opt_object(
    body: Mapping[str, Any], path: str, *, label: str | None = None
) -> Mapping[str, Any]:
    """An optional object (the buyer, the customer...): empty when absent, null, ``""`` or ``[]``
    (PHP encodes an empty object as an empty array); any other non-object is refused, since its
    fields would otherwise be read from a string or a number."""
    value = get_path(body, path)
    if isinstance(value, Mapping):
        return value
    if value is None or value in ("", []):
        return {}
    raise InvalidPayload(path, f"must be an object, got {json_type(value)}")


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


# -- amounts ----------------------------------------------------------------------------------


def _decimal(value: Any, path: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise InvalidPayload(path, "must be a number")
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation as exc:
        raise InvalidPayload(path, f"must be a number, got {str(value)[:40]!r}") from exc
    if not amount.is_finite() or amount < 0:
        raise InvalidPayload(path, "must be a finite amount >= 0")
    if amount >= _MAX_AMOUNT:
        raise InvalidPayload(path, "is too large")
    if amount != amount.quantize(Decimal("0.0001")):
        raise InvalidPayload(path, "has more than 4 decimal places")
    return amount


def amount_from_units(body: Mapping[str, Any], path: str) -> Decimal | None:
    """An amount the gateway sends in currency units (reais), exact."""
    value = get_path(body, path)
    return None if value is None or value == "" else _decimal(value, path)


def amount_from_cents(body: Mapping[str, Any], path: str) -> Decimal | None:
    """An amount the gateway sends as integer cents, in currency units."""
    value = get_path(body, path)
    if value is None or value == "":
        return None
    cents = _decimal(value, path)
    if cents != cents.to_integral_value():
        raise InvalidPayload(path, "must be a whole number of cents")
    return cents.scaleb(-2)


def currency(value: str | None, path: str, default: str = "BRL") -> str:
    code = (value or default).strip().upper()
    if not _CURRENCY.fullmatch(code):
        raise InvalidPayload(path, f"must be an ISO 4217 code, got {code[:10]!r}")
    return code


# -- times ------------------------------------------------------------------------------------


def brasilia_time(body: Mapping[str, Any], path: str, formats: tuple[str, ...]) -> datetime | None:
    """Brasília local time without an offset (Kiwify, Perfect Pay), converted to UTC."""
    value = opt_text(body, path)
    if value is None:
        return None
    local = _strptime(value, formats)
    if local is None:
        raise InvalidPayload(path, f"is not a date in the form {formats[0]!r}")
    return _brasilia_to_utc(_within_range(local, path))


@lru_cache(maxsize=4096)
def _strptime(value: str, formats: tuple[str, ...]) -> datetime | None:
    # Cached, as is the zone conversion: they cost more than the rest of a field read, and
    # minute-resolution timestamps repeat across a burst of sales (several per payload, too).
    for fmt in formats:
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    return None


@lru_cache(maxsize=4096)
def _brasilia_to_utc(local: datetime) -> datetime:
    return local.replace(tzinfo=BRASILIA).astimezone(UTC)


def _within_range(moment: datetime, path: str) -> datetime:
    """Refuse years no gateway means (and whose conversion to UTC would overflow at year 9999)."""
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise InvalidPayload(
            path, f"is out of range (year {moment.year}; {EARLIEST_YEAR} to {LATEST_YEAR})"
        )
    return moment


def epoch_ms_time(body: Mapping[str, Any], path: str) -> datetime | None:
    """Unix epoch milliseconds (Hotmart), as UTC."""
    value = get_path(body, path)
    if value is None or value == "":
        return None
    millis = _decimal(value, path)
    try:
        moment = datetime.fromtimestamp(float(millis) / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidPayload(path, "is not a valid epoch in milliseconds") from exc
    return _within_range(moment, path)


def iso_time(body: Mapping[str, Any], path: str) -> datetime | None:
    """ISO 8601 with an offset or ``Z`` (Cakto, Eduzz v3), as UTC; no offset means Brasília."""
    value = opt_text(body, path)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidPayload(path, "is not an ISO 8601 date-time") from exc
    _within_range(parsed, path)
    if parsed.tzinfo is None:
        return _brasilia_to_utc(parsed)
    return parsed.astimezone(UTC)


def first_time(*candidates: datetime | None) -> datetime | None:
    return next((c for c in candidates if c is not None), None)


# -- people and tracking ----------------------------------------------------------------------


def split_name(full_name: str | None) -> tuple[str | None, str | None]:
    """First and last word of a full name (Meta's ``fn`` / ``ln``)."""
    words = (full_name or "").split()
    if not words:
        return None, None
    return words[0], (words[-1] if len(words) > 1 else None)


def hashed_user_data(
    *,
    email: Any = None,
    phone: Any = None,
    first_name: Any = None,
    last_name: Any = None,
    city: Any = None,
    state: Any = None,
    zip_code: Any = None,
    country: Any = None,
    birth_date: Any = None,
    gender: Any = None,
    date_order: DateOrder = "dmy",
) -> HashedUserData:
    """Hash what is present as Meta normalises it; plaintext does not leave this function.

    Phones without a country code are read in ``country`` (the buyer's, or the gateway's
    :attr:`GatewayAdapter.default_country`); with no country, only international numbers count.
    """
    hashed = hash_user_data(
        {
            "em": email,
            "ph": phone,
            "fn": first_name,
            "ln": last_name,
            "ct": city,
            "st": state,
            "zp": zip_code,
            "country": country,
            "db": birth_date,
            "ge": gender,
        },
        default_region=None,
        date_order=date_order,
    )
    return HashedUserData(
        em=hashed.get("em"),
        ph=hashed.get("ph"),
        fn=hashed.get("fn"),
        ln=hashed.get("ln"),
        ct=hashed.get("ct"),
        st=hashed.get("st"),
        zp=hashed.get("zp"),
        country=hashed.get("country"),
        db=hashed.get("db"),
        ge=hashed.get("ge"),
    )


def tracking_from(
    source: Mapping[str, Any] | None,
    *,
    extra_keys: tuple[str, ...] = (),
    aliases: Mapping[str, str] | None = None,
) -> Tracking:
    """Tracking fields found in one object: ``src``, ``sck``, ``utm_*``, fbclid/fbc/fbp, extras.

    ``aliases`` maps a gateway's own key to ours (``_fbp`` -> ``fbp``, ``source`` ->
    ``utm_source``).
    """
    if not isinstance(source, Mapping):
        return Tracking()
    values: dict[str, str] = {}
    for key, raw in source.items():
        value = text(raw)
        if value is None or value.lower() in _PLACEHOLDERS:
            continue
        values[(aliases or {}).get(key, key)] = value
    # Campaign tags and pass-through fields are free text (an e-mail in utm_content): stored with
    # e-mails, phones and documents replaced. Click ids (fbclid, fbc, fbp) are left byte for byte.
    for key in ("src", "sck", *UTM_KEYS, *extra_keys):
        if key in values:
            values[key] = redact_text(values[key])
    return Tracking(
        src=values.get("src"),
        sck=values.get("sck"),
        utm={key: values[key] for key in UTM_KEYS if key in values},
        fbclid=click_id(source, "fbclid", aliases),
        fbc=click_id(source, "fbc", aliases) or click_id(source, "_fbc", aliases),
        fbp=click_id(source, "fbp", aliases) or click_id(source, "_fbp", aliases),
        extra={key: values[key] for key in extra_keys if key in values},
    )


def click_id(source: Mapping[str, Any], name: str, aliases: Mapping[str, str] | None) -> str | None:
    """A click id whole (never cut at :data:`_MAX_TEXT`), or None when it is not one: longer than
    its documented limit or malformed (:data:`~trackai_ingestion.domain.collect.CLICK_ID_PATTERNS`);
    Meta would match an altered value to nobody."""
    keys = [key for key, target in (aliases or {}).items() if target == name] + [name]
    pattern = CLICK_ID_PATTERNS[name.lstrip("_")]
    for key in keys:
        raw = source.get(key)
        if type(raw) is not str:
            continue
        value = raw.strip()
        if value.lower() not in _PLACEHOLDERS and pattern.fullmatch(value):
            return value
    return None


#: Longest checkout URL kept (a longer one is dropped, never cut).
_MAX_URL = 2048


def page_url(value: Any) -> str | None:
    """An ``http(s)`` URL the gateway gives for its checkout page, whole; else None."""
    if type(value) is not str:
        return None
    url = value.strip()
    if len(url) > _MAX_URL or not url.lower().startswith(("https://", "http://")) or " " in url:
        return None
    return url


def count_above_one(value: Any) -> bool:
    """Whether a charge counter (``charges_made``, ``recurrence_number``...) says this is not the
    first charge: a renewal. Absent or unreadable counts are a first purchase."""
    number = text(value)
    return number is not None and number.isdigit() and int(number) > 1


def client_ip(value: Any) -> str | None:
    """The buyer's address when it is a valid public one, else ``None`` (never sent to Meta)."""
    candidate = text(value)
    return public_ip(candidate) if candidate is not None else None


def status_from(table: Mapping[str, CanonicalStatus], key: str | None) -> CanonicalStatus | None:
    return table.get(key.strip().lower()) if key is not None else None


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def payment_method(table: Mapping[str, PaymentMethod], raw: str | None) -> PaymentMethod:
    """The canonical method: unknown when not sent, other when sent but not one we know."""
    if raw is None:
        return PaymentMethod.UNKNOWN
    return table.get(raw.strip().lower(), PaymentMethod.OTHER)
