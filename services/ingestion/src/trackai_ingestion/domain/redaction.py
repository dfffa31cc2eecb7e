"""The redacted copy of a webhook body kept for audit and replay: no personal data, no secrets.

Stricter than the log redaction (``trackai_kit.redaction``): whole buyer blocks lose every value,
flat legacy keys (``cus_*``, ``student_*``...) and name/address keys too, then the kit's rules
remove credentials and any e-mail, phone or CPF left in free text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal

from trackai_kit.redaction import REDACTED, redact

#: Objects that describe a person: every value inside is dropped (structure kept).
_PERSON_BLOCKS = frozenset(
    {
        "customer",
        "buyer",
        "student",
        "card",
        "address",
        "shipping",
        "producer",
        "affiliate",
        "affiliates",
        "commissioned_stores",
        "subscriber",
        "commissions",
        "commission",
    }
)
#: Keys whose value identifies a person wherever they appear.
_PERSON_KEYS = frozenset(
    {
        "name",
        "full_name",
        "first_name",
        "last_name",
        "holder_name",
        "email",
        "phone",
        "mobile",
        "cpf",
        "cnpj",
        "document",
        "doc_number",
        "identification_number",
        "birthday",
        "birth_date",
        "date_birth",
        "ip",
        "instagram",
        "street",
        "zipcode",
        "zip_code",
        "checkout_phone",
    }
)
#: Flat (legacy, form-style) keys about the buyer, student, affiliate or producer.
_PERSON_PREFIXES = ("cus_", "student_", "aff_", "pro_", "buyer_", "customer_")


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower().replace("-", "_")


def _blank(value: object) -> object:
    if isinstance(value, Mapping):
        return {key: _blank(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_blank(item) for item in value]
    return None if value is None else REDACTED


def _strip_people(value: object) -> object:
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for key, item in value.items():
            name = _snake(str(key))
            if name in _PERSON_BLOCKS:
                out[key] = _blank(item)
            elif name in _PERSON_KEYS or name.startswith(_PERSON_PREFIXES):
                out[key] = None if item is None else REDACTED
            else:
                out[key] = _strip_people(item)
        return out
    if isinstance(value, list):
        return [_strip_people(item) for item in value]
    if isinstance(value, Decimal):
        # JSONB keeps numbers; audit does not need more than a float's precision.
        return float(value)
    return value


def redact_body(body: Mapping[str, object]) -> dict[str, object]:
    """A JSON-serialisable copy of ``body`` safe to store."""
    result = redact(_strip_people(body))
    assert isinstance(result, dict)
    return result
