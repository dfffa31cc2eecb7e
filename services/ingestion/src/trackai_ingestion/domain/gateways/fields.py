"""Reading a gateway payload's values: fields by path, amounts, times, statuses and payment
methods; each refusal is an :class:`InvalidPayload` naming the field."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from trackai_ingestion.domain.model import CanonicalStatus, InvalidPayload, PaymentMethod

#: Brazilian gateways that send local time without an offset mean Brasília time.
BRASILIA = ZoneInfo("America/Sao_Paulo")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MAX_TEXT = 200
#: Event times outside these years are refused: no sale of ours happened before 2000 nor is one
#: dated in the next century (and converting 9999-12-31 to UTC overflows).
EARLIEST_YEAR = 2000
LATEST_YEAR = 2099
#: ``ingestion.events.amount`` is numeric(18, 4).
_MAX_AMOUNT = Decimal(10) ** 14


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


def count_above_one(value: Any) -> bool:
    """Whether a charge counter (``charges_made``, ``recurrence_number``...) says this is not the
    first charge: a renewal. Absent or unreadable counts are a first purchase."""
    number = text(value)
    return number is not None and number.isdigit() and int(number) > 1


def status_from(table: Mapping[str, CanonicalStatus], key: str | None) -> CanonicalStatus | None:
    return table.get(key.strip().lower()) if key is not None else None


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def payment_method(table: Mapping[str, PaymentMethod], raw: str | None) -> PaymentMethod:
    """The canonical method: unknown when not sent, other when sent but not one we know."""
    if raw is None:
        return PaymentMethod.UNKNOWN
    return table.get(raw.strip().lower(), PaymentMethod.OTHER)
