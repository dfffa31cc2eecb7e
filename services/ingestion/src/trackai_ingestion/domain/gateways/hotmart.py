"""Hotmart postback v2: static ``X-HOTMART-HOTTOK`` header; amounts in reais; epoch milliseconds.

Hotmart disables a URL that keeps failing, so everything well-formed that we do not use is
answered 2xx and ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trackai_ingestion.domain.gateways.base import (
    GatewayAdapter,
    WebhookRequest,
)
from trackai_ingestion.domain.gateways.fields import (
    amount_from_units,
    count_above_one,
    currency,
    epoch_ms_time,
    first_time,
    get_path,
    opt_object,
    opt_text,
    payment_method,
    require_object,
    require_text,
    status_from,
    text,
)
from trackai_ingestion.domain.gateways.people import (
    hashed_user_data,
    split_name,
    tracking_from,
)
from trackai_ingestion.domain.gateways.signatures import (
    secrets_match,
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
    "purchase_approved": CanonicalStatus.APPROVED,
    "purchase_complete": CanonicalStatus.COMPLETED,
    "purchase_canceled": CanonicalStatus.CANCELED,
    "purchase_refunded": CanonicalStatus.REFUNDED,
    "purchase_chargeback": CanonicalStatus.CHARGEBACK,
    "purchase_billet_printed": CanonicalStatus.PENDING_PAYMENT,
    "purchase_protest": CanonicalStatus.DISPUTED,
    "purchase_expired": CanonicalStatus.EXPIRED,
    "purchase_out_of_shopping_cart": CanonicalStatus.ABANDONED,
}
_METHODS = {
    "credit_card": PaymentMethod.CREDIT_CARD,
    "billet": PaymentMethod.BOLETO,
    "pix": PaymentMethod.PIX,
    "paypal": PaymentMethod.PAYPAL,
    "debit_card": PaymentMethod.DEBIT_CARD,
}
#: Hotmart's fixed test postback (the "send test" button of the webhook page).
_TEST_TRANSACTION = "HP16015479281022"


class HotmartAdapter(GatewayAdapter):
    name = "hotmart"
    # Hotmart sells worldwide: a buyer without a country is not assumed Brazilian.
    default_country = None
    display_name = "Hotmart"
    credential_location = "Hotmart > Ferramentas > Webhook (API e notificações) > Hottok"

    def authenticate(self, request: WebhookRequest, secret: str) -> None:
        hottok = request.headers.get("x-hotmart-hottok")
        if hottok is None:
            raise AuthenticationFailed(
                "hotmart_hottok",
                "missing X-HOTMART-HOTTOK header: configure this URL as a Hotmart webhook "
                "(postback v2), which sends the account's hottok in that header",
            )
        if not secrets_match(hottok.strip(), secret):
            raise AuthenticationFailed(
                "hotmart_hottok",
                "X-HOTMART-HOTTOK does not match the hottok stored for this tenant; copy it from "
                f"{self.credential_location}",
            )

    def interpret(self, body: Mapping[str, Any]) -> Accept | Ignore:
        event = require_text(body, "event")
        status = status_from(_EVENTS, event)
        if status is None:
            order = opt_text(body, "data.purchase.transaction")
            return Ignore(f"unsupported hotmart event {event!r}", order)
        purchase = require_object(body, "data.purchase")
        order_id = require_text(body, "data.purchase.transaction")
        event_time = first_time(
            epoch_ms_time(body, "data.purchase.approved_date")
            if status is CanonicalStatus.APPROVED
            else None,
            epoch_ms_time(body, "data.purchase.order_date")
            if status in (CanonicalStatus.PENDING_PAYMENT, CanonicalStatus.ABANDONED)
            else None,
            epoch_ms_time(body, "creation_date"),
            epoch_ms_time(body, "data.purchase.order_date"),
        )
        if event_time is None:
            raise InvalidPayload("creation_date", "is required")
        buyer = opt_object(body, "data.buyer")
        first, last = split_name(opt_text(buyer, "name"))
        conversion = Conversion(
            gateway=self.name,
            order_id=order_id,
            status=status,
            gateway_status=event,
            event_time=event_time,
            amount=amount_from_units(body, "data.purchase.price.value"),
            currency=currency(
                opt_text(body, "data.purchase.price.currency_value"),
                "data.purchase.price.currency_value",
            ),
            product_id=opt_text(body, "data.product.id"),
            product_name=opt_text(body, "data.product.name"),
            payment_method=payment_method(_METHODS, opt_text(purchase, "payment.type")),
            tracking=tracking_from(get_path(purchase, "origin"), extra_keys=("xcod",)),
            client_ip=None,
            user_agent=None,
            user_data=hashed_user_data(
                email=get_path(buyer, "email"),
                phone=_phone(buyer),
                first_name=opt_text(buyer, "first_name") or first,
                last_name=opt_text(buyer, "last_name") or last,
                city=get_path(buyer, "address.city"),
                state=get_path(buyer, "address.state"),
                zip_code=get_path(buyer, "address.zipcode"),
                # The buyer's address, else the country the checkout was shown in.
                country=opt_text(buyer, "address.country_iso")
                or opt_text(buyer, "address.country")
                or opt_text(purchase, "checkout_country.iso"),
            ),
            renewal=count_above_one(get_path(purchase, "recurrence_number")),
        )
        return Accept(conversion, _test_reason(body, order_id))


def _phone(buyer: Mapping[str, Any]) -> str | None:
    """``checkout_phone``, prefixed with ``checkout_phone_code`` when that is a country code."""
    phone = text(buyer.get("checkout_phone"))
    code = text(buyer.get("checkout_phone_code"))
    if phone and code and code.isdigit() and len(code) <= 3 and not phone.startswith("+"):
        return f"+{code}{phone}"
    return phone


def _test_reason(body: Mapping[str, Any], order_id: str) -> str | None:
    if order_id == _TEST_TRANSACTION or opt_text(body, "data.product.id") == "0":
        return "hotmart test postback (product id 0 / HP16015479281022)"
    return None
