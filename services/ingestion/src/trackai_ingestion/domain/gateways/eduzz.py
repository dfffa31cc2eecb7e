"""Eduzz webhooks v3 (``myeduzz.*``): ``x-signature`` = HMAC-SHA256(secret, raw body) in hex;
amounts in reais; ISO times with offset. The legacy postback format is recognised and ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from trackai_ingestion.domain.gateways.base import (
    GatewayAdapter,
    WebhookRequest,
)
from trackai_ingestion.domain.gateways.fields import (
    amount_from_units,
    currency,
    first_time,
    get_path,
    iso_time,
    opt_object,
    opt_text,
    payment_method,
    require_object,
    require_text,
    status_from,
)
from trackai_ingestion.domain.gateways.people import (
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

_EVENTS = {
    "myeduzz.invoice_paid": CanonicalStatus.APPROVED,
    "myeduzz.invoice_opened": CanonicalStatus.PENDING_PAYMENT,
    "myeduzz.invoice_waiting_payment": CanonicalStatus.PENDING_PAYMENT,
    "myeduzz.invoice_canceled": CanonicalStatus.CANCELED,
    "myeduzz.invoice_refunded": CanonicalStatus.REFUNDED,
    "myeduzz.invoice_chargeback": CanonicalStatus.CHARGEBACK,
    "myeduzz.invoice_expired": CanonicalStatus.EXPIRED,
}
_PINGS = {"ping", "myeduzz.ping", "myeduzz.webhook_test"}
_METHODS = {
    "creditcard": PaymentMethod.CREDIT_CARD,
    "credit_card": PaymentMethod.CREDIT_CARD,
    "pix": PaymentMethod.PIX,
    "bankslip": PaymentMethod.BOLETO,
    "boleto": PaymentMethod.BOLETO,
    "paypal": PaymentMethod.PAYPAL,
    "debitcard": PaymentMethod.DEBIT_CARD,
}
_UTM_ALIASES = {
    "source": "utm_source",
    "medium": "utm_medium",
    "campaign": "utm_campaign",
    "content": "utm_content",
    "term": "utm_term",
}


class EduzzAdapter(GatewayAdapter):
    name = "eduzz"
    display_name = "Eduzz"
    credential_location = (
        "Eduzz > Console do desenvolvedor > Webhooks (the webhook's signing secret)"
    )

    def authenticate(self, request: WebhookRequest, secret: str) -> None:
        # Bare hex; a ``sha256=`` value in the same header is the relay signature (base module).
        native = [v for v in request.header_values("x-signature") if "=" not in v]
        if not native:
            raise AuthenticationFailed(
                "eduzz_signature",
                "missing x-signature header: Eduzz v3 webhooks carry an HMAC-SHA256 signature of "
                "the body; configure this URL as an Eduzz webhook v3",
            )
        signature = only_one(
            native,
            "eduzz_signature",
            "Eduzz x-signature values: Eduzz sends exactly one (a relay's own signature is the "
            "`sha256=` value beside it)",
        )
        if not signature_matches(signature, "sha256", secret, request.raw):
            raise AuthenticationFailed(
                "eduzz_signature",
                "Eduzz x-signature does not match the webhook secret stored for this tenant; "
                f"copy the secret from {self.credential_location}",
            )

    def interpret(self, body: Mapping[str, Any]) -> Accept | Ignore:
        event = opt_text(body, "event")
        if event is None and "trans_cod" in body:
            return Ignore(
                "eduzz legacy postback format (trans_cod/trans_status); configure an Eduzz "
                "webhook v3 (myeduzz.*) for this URL",
                opt_text(body, "trans_cod"),
            )
        if event is None:
            raise InvalidPayload("event", "is required")
        if event.lower() in _PINGS:
            return Ignore("eduzz ping (webhook test)", is_test=True)
        status = status_from(_EVENTS, event)
        if status is None:
            return Ignore(f"unsupported eduzz event {event!r}", opt_text(body, "data.id"))
        data = require_object(body, "data")
        order_id = require_text(body, "data.id")
        paid = amount_from_units(body, "data.paid.value")
        event_time = first_time(
            iso_time(body, "data.paidAt") if status is CanonicalStatus.APPROVED else None,
            iso_time(body, "data.updatedAt"),
            iso_time(body, "sentDate"),
            iso_time(body, "data.createdAt"),
        )
        if event_time is None:
            raise InvalidPayload("sentDate", "is required")
        buyer = opt_object(body, "data.buyer")
        first, last = split_name(opt_text(buyer, "name"))
        items = data.get("items")
        item = (
            items[0] if isinstance(items, list) and items and isinstance(items[0], Mapping) else {}
        )
        tracking = tracking_from(get_path(data, "utm"), aliases=_UTM_ALIASES)
        trackers = tracking_from(get_path(data, "tracker"), extra_keys=("code1", "code2", "code3"))
        conversion = Conversion(
            gateway=self.name,
            order_id=order_id,
            status=status,
            gateway_status=event,
            event_time=event_time,
            amount=paid
            if paid is not None and status is CanonicalStatus.APPROVED
            else amount_from_units(body, "data.price.value"),
            currency=currency(
                opt_text(body, "data.paid.currency") or opt_text(body, "data.price.currency"),
                "data.price.currency",
            ),
            product_id=opt_text(item, "productId"),
            product_name=opt_text(item, "name"),
            payment_method=payment_method(_METHODS, opt_text(data, "paymentMethod")),
            tracking=replace(
                tracking,
                extra={f"tracker.{key}": value for key, value in trackers.extra.items()},
            ),
            client_ip=None,
            user_agent=None,
            user_data=hashed_user_data(
                email=get_path(buyer, "email"),
                phone=get_path(buyer, "cellphone") or get_path(buyer, "phone"),
                first_name=first,
                last_name=last,
                city=get_path(buyer, "address.city"),
                state=get_path(buyer, "address.state"),
                zip_code=get_path(buyer, "address.zipCode"),
                country=opt_text(buyer, "address.country") or self.default_country,
            ),
        )
        return Accept(conversion)
