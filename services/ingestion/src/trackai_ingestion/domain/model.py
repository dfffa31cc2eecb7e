"""The canonical conversion every gateway webhook is normalised into, and the domain's errors.

Personal data exists here only as SHA-256 digests of Meta-normalised values (``trackai_kit.pii``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class CanonicalStatus(StrEnum):
    """Order status in one vocabulary, whatever the gateway calls it (``events.status``)."""

    APPROVED = "approved"
    PENDING_PAYMENT = "pending_payment"
    REFUSED = "refused"
    REFUNDED = "refunded"
    CHARGEBACK = "chargeback"
    CANCELED = "canceled"
    ABANDONED = "abandoned"
    COMPLETED = "completed"
    EXPIRED = "expired"
    DISPUTED = "disputed"


class PaymentMethod(StrEnum):
    CREDIT_CARD = "credit_card"
    DEBIT_CARD = "debit_card"
    PIX = "pix"
    BOLETO = "boleto"
    PAYPAL = "paypal"
    OTHER = "other"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Tracking:
    """Click identifiers and campaign tags the checkout passed through."""

    src: str | None = None
    sck: str | None = None
    #: ``utm_source`` ... ``utm_term`` that were present.
    utm: Mapping[str, str] = field(default_factory=dict)
    fbclid: str | None = None
    fbc: str | None = None
    fbp: str | None = None
    #: Gateway pass-through fields that may carry our session id (``s1``, ``xcod``, ...).
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HashedUserData:
    """Lowercase hex SHA-256 of Meta-normalised values; ``None`` where absent or unusable."""

    em: str | None = None
    ph: str | None = None
    fn: str | None = None
    ln: str | None = None
    ct: str | None = None
    st: str | None = None
    zp: str | None = None
    country: str | None = None
    external_id: str | None = None
    #: Date of birth (``YYYYMMDD``) and gender (``f``/``m``) before hashing.
    db: str | None = None
    ge: str | None = None


@dataclass(frozen=True)
class Conversion:
    """One order state reported by a gateway, normalised."""

    gateway: str
    order_id: str
    status: CanonicalStatus
    #: The gateway's own event/status value, for audit (``order_approved``, ``PURCHASE_APPROVED``).
    gateway_status: str
    #: When the status happened at the gateway, timezone-aware UTC.
    event_time: datetime
    #: Gross amount paid by the buyer in currency units (cents already divided); None if not sent.
    amount: Decimal | None
    currency: str | None
    product_id: str | None
    product_name: str | None
    payment_method: PaymentMethod
    tracking: Tracking
    client_ip: str | None
    user_agent: str | None
    user_data: HashedUserData
    #: An automatic charge of a subscription after the first one (Meta ``system_generated``);
    #: False for a purchase made on the checkout page (``website``).
    renewal: bool = False
    #: The checkout page the buyer paid on, when the gateway says (``event_source_url`` when no
    #: click is matched).
    checkout_url: str | None = None


@dataclass(frozen=True)
class Accept:
    """The webhook describes a conversion; ``test_reason`` marks a gateway's known test payload."""

    conversion: Conversion
    test_reason: str | None = None


@dataclass(frozen=True)
class Ignore:
    """A well-formed webhook we deliberately do not turn into a conversion (answered 2xx)."""

    reason: str
    order_id: str | None = None
    #: A gateway's connectivity test (Eduzz ping) rather than an unsupported event.
    is_test: bool = False


Interpretation = Accept | Ignore


class InvalidPayload(ValueError):
    """The body cannot be a webhook of this gateway; ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.detail = message


class MalformedBody(ValueError):
    """The body is not a JSON object."""


class AuthenticationFailed(PermissionError):
    """The request does not carry the tenant's credential; the message tells the operator which.

    ``credential`` names the mechanism (``kiwify_signature``, ``x_signature``...) for the security
    log line; the message never contains the expected or the received secret.
    """

    def __init__(self, credential: str, message: str, *, reason: str = "mismatch") -> None:
        super().__init__(message)
        self.credential = credential
        #: ``missing``, ``mismatch``, ``malformed``, ``stale``, ``future`` or ``legacy_refused``:
        #: a metric attribute, so alarms can tell a forgery from a relay's drifting clock.
        self.reason = reason
