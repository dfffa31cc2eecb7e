"""The redacted copy of a webhook body kept for audit and replay: no personal data, no secrets.

Stricter than the log redaction (``trackai_kit.redaction``): whole buyer blocks lose every value,
flat legacy keys (``cus_*``, ``student_*``...) and name/address keys too, then the kit's rules
remove credentials and any e-mail, phone or CPF left in free text.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import Enum
from functools import lru_cache

from trackai_kit.redaction import REDACTED, is_sensitive_key, redact_text, snake_key

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
        # Monetizze, Greenn, Ticto.
        "comprador",
        "dados_comprador",
        "produtor",
        "comissoes",
        "client",
        "seller",
        "cards",
        "coproducers",
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
        # A registered boleto's line and bar code point at the bill issued to the buyer.
        "trans_payment_line",
        "trans_payment_bar_code",
        "linha_digitavel",
    }
)
#: Flat (legacy, form-style) keys about the buyer, student, affiliate or producer.
_PERSON_PREFIXES = (
    "cus_",
    "student_",
    "aff_",
    "pro_",
    "buyer_",
    "customer_",
    # Braip's flat keys.
    "client_",
    "producer_",
)


class _Rule(Enum):
    KEEP = 0  # the value is walked
    DROP = 1  # the value becomes REDACTED (None stays None for person keys)
    SECRET = 2  # the value becomes REDACTED, whatever it is
    BLANK = 3  # a block about a person: structure kept, every value REDACTED


@lru_cache(maxsize=4096)
def _rule(key: str) -> _Rule:
    """What happens to a key's value; cached (payload keys are a small vocabulary, and the cache
    is bounded, so an unusual key only costs the uncached check)."""
    if is_sensitive_key(key):
        return _Rule.SECRET
    name = snake_key(key)
    if name in _PERSON_BLOCKS:
        return _Rule.BLANK
    if name in _PERSON_KEYS or name.startswith(_PERSON_PREFIXES):
        return _Rule.DROP
    return _Rule.KEEP


def _blank(value: object) -> object:
    if isinstance(value, dict):
        return {
            key: REDACTED if is_sensitive_key(key) else _blank(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_blank(item) for item in value]
    return None if value is None else REDACTED


def _redacted(value: object) -> object:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, item in value.items():
            rule = _rule(key)
            if rule is _Rule.KEEP:
                out[key] = _redacted(item)
            elif rule is _Rule.BLANK:
                out[key] = _blank(item)
            elif rule is _Rule.DROP and item is None:
                out[key] = None
            else:
                out[key] = REDACTED
        return out
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    if isinstance(value, Decimal):
        # JSONB keeps numbers; audit does not need more than a float's precision.
        return float(value)
    return value


def redact_body(body: Mapping[str, object]) -> dict[str, object]:
    """A JSON-serialisable copy of a parsed JSON ``body`` safe to store, in one walk."""
    result = _redacted(dict(body))
    assert isinstance(result, dict)
    return result
