"""The redacted copy of a webhook body kept for audit and replay: no personal data, no secrets.

An allow-list, stricter than the log redaction (``trackai_kit.redaction``): a scalar value is kept
only when its key is made of words that describe the sale (statuses, ids, amounts, dates, product,
payment and campaign fields, :data:`_SALE_WORDS`); every other value is stored as ``[REDACTED]``
(``null`` stays ``null``), so a gateway that adds a field about the buyer adds nothing readable.
Structure is kept (mappings and lists are walked), whole buyer blocks lose every value, credential
keys lose theirs wherever they are, and kept text still loses any e-mail, phone or CPF in it.
"""

from __future__ import annotations

import re
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
#: Words a kept key is made of (after snake-casing, split on anything but letters and digits):
#: ``order_status``, ``sale_amount``, ``payment_method_enum_key``, ``utm_campaign``,
#: ``trans_items[0][item_value]``. A key with any other word (``name``, ``email``, ``phone``,
#: ``street``, ``ip``, ``url``, ``reason``...) has its value redacted.
_SALE_WORDS = frozenset(
    {
        # what and which
        "order", "orders", "id", "ids", "ref", "code", "cod", "key", "uuid", "short", "sku",
        "reference", "parent", "external", "transaction", "trans", "sale", "sales", "item",
        "items", "product", "products", "offer", "plan", "bump", "funnel", "store", "checkout",
        "type", "types", "kind", "enum", "event", "webhook", "version", "status", "detail",
        "number", "is", "has", "physical", "production", "co", "sent", "origin",
        # payment and money
        "payment", "method", "format", "installment", "installments", "amount", "value", "values",
        "price", "base", "total", "fee", "fees", "tax", "rate", "discount", "coupon", "currency",
        "iso", "charge", "charges", "charged", "made", "chargetype", "settlement", "net", "gross",
        "my", "quantity", "qty", "count", "brand", "refund", "refunded", "chargeback",
        "chargedback", "canceled", "cancelled", "paid", "approved", "funds",
        # time
        "date", "time", "at", "created", "updated", "createdate", "createtime", "due", "duedate",
        "duetime", "paiddate", "paidtime", "expiration", "expiry", "start", "startdate", "next",
        "first", "last", "period", "interval", "frequency", "recurrence", "subscription",
        "recurring", "warranty", "guarantee", "until", "active", "access",
        # the same in Portuguese (Monetizze, Braip, Ticto...)
        "codigo", "venda", "vendas", "produto", "produtos", "oferta", "plano", "tipo",
        "situacao", "valor", "valores", "preco", "liquido", "bruto", "moeda", "taxa",
        "desconto", "cupom", "parcelas", "parcela", "quantidade", "forma", "pagamento", "meio",
        "data", "inicio", "fim", "finalizada", "recorrencia", "assinatura", "fatura", "numero",
        # campaign
        "utm", "source", "medium", "campaign", "content", "term", "src", "sck", "xcod", "s1",
        "s2", "s3", "tracking", "tracker", "trk", "trk2", "trk3", "fbc", "fbp", "fbclid",
        "ttclid", "gclid",
    }
)  # fmt: skip
#: Names that are the product's, not a person's (the events row keeps them too).
_PRODUCT_NAMES = frozenset({"product_name", "offer_name", "plan_name", "item_product_name"})
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
#: Digits-only words (``trans_items[0]``) are positions, not data.
_POSITION = re.compile(r"\d+")


class _Rule(Enum):
    KEEP = 0  # a scalar is kept (text redacted), a mapping or list is walked
    WALK = 1  # a mapping or list is walked, a scalar becomes REDACTED (None stays None)
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
    if name in _PRODUCT_NAMES:
        return _Rule.KEEP
    words = [w for w in _WORD_SPLIT.split(name) if w and not _POSITION.fullmatch(w)]
    if words and all(word in _SALE_WORDS for word in words):
        return _Rule.KEEP
    return _Rule.WALK


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
            if rule is _Rule.BLANK:
                out[key] = _blank(item)
            elif rule is _Rule.SECRET:
                out[key] = REDACTED
            elif rule is _Rule.KEEP or isinstance(item, dict | list):
                out[key] = _redacted(item)
            else:
                out[key] = None if item is None else REDACTED
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
