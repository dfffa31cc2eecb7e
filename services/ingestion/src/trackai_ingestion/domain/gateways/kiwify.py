"""Kiwify: ``signature`` query parameter = HMAC-SHA1(webhook token, raw body); amounts in cents,
times in Brasília local time (``YYYY-MM-DD HH:mm``); abandoned carts come in a different shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trackai_ingestion.domain.gateways.base import (
    GatewayAdapter,
    WebhookRequest,
)
from trackai_ingestion.domain.gateways.fields import (
    amount_from_cents,
    brasilia_time,
    currency,
    first_time,
    get_path,
    iso_time,
    opt_object,
    opt_text,
    payment_method,
    require_text,
    status_from,
)
from trackai_ingestion.domain.gateways.people import (
    client_ip,
    hashed_user_data,
    split_name,
    tracking_from,
)
from trackai_ingestion.domain.gateways.signatures import (
    only_one,
    signature_matches,
)
from trackai_ingestion.domain.model import (
    Accept,
    AuthenticationFailed,
    CanonicalStatus,
    Conversion,
    Ignore,
    InvalidPayload,
    PaymentMethod,
)

_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")

#: ``webhook_event_type`` -> status; the order's own ``order_status`` is the fallback.
_EVENTS = {
    "order_approved": CanonicalStatus.APPROVED,
    "subscription_renewed": CanonicalStatus.APPROVED,
    "billet_created": CanonicalStatus.PENDING_PAYMENT,
    "pix_created": CanonicalStatus.PENDING_PAYMENT,
    "order_rejected": CanonicalStatus.REFUSED,
    "order_refunded": CanonicalStatus.REFUNDED,
    "chargeback": CanonicalStatus.CHARGEBACK,
    "subscription_canceled": CanonicalStatus.CANCELED,
}
_ORDER_STATUSES = {
    "paid": CanonicalStatus.APPROVED,
    "approved": CanonicalStatus.APPROVED,
    "waiting_payment": CanonicalStatus.PENDING_PAYMENT,
    "refused": CanonicalStatus.REFUSED,
    "refunded": CanonicalStatus.REFUNDED,
    # Kiwify's spelling.
    "chargedback": CanonicalStatus.CHARGEBACK,
    "abandoned": CanonicalStatus.ABANDONED,
}
#: Events that say nothing new about an order (overdue subscription, ...).
_UNSUPPORTED = {"subscription_late"}
_METHODS = {
    "credit_card": PaymentMethod.CREDIT_CARD,
    "pix": PaymentMethod.PIX,
    "boleto": PaymentMethod.BOLETO,
    "debit_card": PaymentMethod.DEBIT_CARD,
    "paypal": PaymentMethod.PAYPAL,
}
_TEST_EMAIL = "johndoe@example.com"
_TEST_NAME = "John Doe"


class KiwifyAdapter(GatewayAdapter):
    name = "kiwify"
    # Kiwify has international checkouts (its phones always carry their country code).
    default_country = None
    display_name = "Kiwify"
    credential_location = "Kiwify > Apps > Webhooks (the webhook's token)"

    def authenticate(self, request: WebhookRequest, secret: str) -> None:
        signatures = request.query_values("signature")
        if not signatures:
            raise AuthenticationFailed(
                "kiwify_signature",
                "missing `signature` query parameter: Kiwify signs every webhook with "
                "?signature=<HMAC-SHA1 of the body>; use the webhook URL exactly as Kiwify "
                "calls it",
            )
        signature = only_one(
            signatures,
            "kiwify_signature",
            "`signature` query parameters: Kiwify sends exactly one; use the webhook URL "
            "exactly as Kiwify calls it",
        )
        if not signature_matches(signature, "sha1", secret, request.raw):
            raise AuthenticationFailed(
                "kiwify_signature",
                "Kiwify signature does not match the webhook token stored for this tenant; "
                f"copy the token from {self.credential_location}",
            )

    def interpret(self, body: Mapping[str, Any]) -> Accept | Ignore:
        if "order_id" not in body and body.get("status") == "abandoned":
            return self._abandoned_cart(body)
        order_id = require_text(body, "order_id")
        event = opt_text(body, "webhook_event_type")
        if event is not None and event.lower() in _UNSUPPORTED:
            return Ignore(f"kiwify event {event!r} does not change the order", order_id)
        status = status_from(_EVENTS, event) or status_from(
            _ORDER_STATUSES, opt_text(body, "order_status")
        )
        if status is None:
            what = event or opt_text(body, "order_status") or "(none)"
            return Ignore(f"unsupported kiwify event {what!r}", order_id)
        event_time = first_time(
            brasilia_time(body, "approved_date", _FORMATS)
            if status is CanonicalStatus.APPROVED
            else None,
            brasilia_time(body, "refunded_at", _FORMATS)
            if status in (CanonicalStatus.REFUNDED, CanonicalStatus.CHARGEBACK)
            else None,
            brasilia_time(body, "updated_at", _FORMATS),
            brasilia_time(body, "created_at", _FORMATS),
        )
        if event_time is None:
            raise InvalidPayload("created_at", "is required")
        customer = opt_object(body, "Customer")
        first, last = split_name(opt_text(customer, "full_name"))
        conversion = Conversion(
            gateway=self.name,
            order_id=order_id,
            status=status,
            gateway_status=event or require_text(body, "order_status"),
            event_time=event_time,
            amount=amount_from_cents(body, "Commissions.charge_amount"),
            currency=currency(
                opt_text(body, "Commissions.currency")
                or opt_text(body, "Commissions.product_base_price_currency"),
                "Commissions.currency",
            ),
            product_id=opt_text(body, "Product.product_id"),
            product_name=opt_text(body, "Product.product_name"),
            payment_method=payment_method(_METHODS, opt_text(body, "payment_method")),
            tracking=tracking_from(
                get_path(body, "TrackingParameters"), extra_keys=("s1", "s2", "s3")
            ),
            client_ip=client_ip(get_path(customer, "ip")),
            user_agent=None,
            user_data=hashed_user_data(
                email=get_path(customer, "email"),
                phone=get_path(customer, "mobile"),
                first_name=opt_text(customer, "first_name") or first,
                last_name=last,
                city=get_path(customer, "city"),
                state=get_path(customer, "state"),
                zip_code=get_path(customer, "zipcode"),
                country=opt_text(customer, "country"),
            ),
            renewal=(event or "").lower() == "subscription_renewed",
            checkout_url=_checkout_url(body),
        )
        return Accept(conversion, _test_reason(body, customer))

    def _abandoned_cart(self, body: Mapping[str, Any]) -> Accept:
        order_id = require_text(body, "id")
        event_time = iso_time(body, "created_at")
        if event_time is None:
            raise InvalidPayload("created_at", "is required")
        first, last = split_name(opt_text(body, "name"))
        conversion = Conversion(
            gateway=self.name,
            order_id=order_id,
            status=CanonicalStatus.ABANDONED,
            gateway_status="abandoned",
            event_time=event_time,
            amount=None,
            currency=None,
            product_id=opt_text(body, "product_id"),
            product_name=opt_text(body, "product_name"),
            payment_method=PaymentMethod.UNKNOWN,
            tracking=tracking_from(body, extra_keys=("s1", "s2", "s3")),
            client_ip=None,
            user_agent=None,
            user_data=hashed_user_data(
                email=get_path(body, "email"),
                phone=get_path(body, "phone"),
                first_name=first,
                last_name=last,
                country=opt_text(body, "country"),
            ),
            checkout_url=_checkout_url(body),
        )
        return Accept(conversion)


def _checkout_url(body: Mapping[str, Any]) -> str | None:
    """Kiwify sends its checkout's code (``checkout_link``); the page is
    ``https://pay.kiwify.com.br/<code>``."""
    code = opt_text(body, "checkout_link")
    if code is None or not code.isalnum():
        return None
    return f"https://pay.kiwify.com.br/{code}"


def _test_reason(body: Mapping[str, Any], customer: Mapping[str, Any]) -> str | None:
    """Kiwify's panel test: John Doe / johndoe@example.com with every tracking parameter null."""
    tracking = get_path(body, "TrackingParameters")
    if (
        (opt_text(customer, "email") or "").lower() == _TEST_EMAIL
        and opt_text(customer, "full_name") == _TEST_NAME
        and isinstance(tracking, Mapping)
        and all(value is None for value in tracking.values())
    ):
        return "kiwify panel test payload (the panel's sample buyer, no tracking parameters)"
    return None
