"""Ticto (webhook v2): the static ``token`` in the JSON body; amounts in cents; Brasília local
times; ``"Não Informado"`` wherever a value is empty (tracking, buyer fields); tracking in
``tracking``.
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
    count_above_one,
    first_time,
    get_path,
    opt_object,
    opt_text,
    payment_method,
    require_text,
    status_from,
)
from trackai_ingestion.domain.gateways.people import (
    hashed_user_data,
    page_url,
    split_name,
    tracking_from,
)
from trackai_ingestion.domain.model import (
    Accept,
    CanonicalStatus,
    Conversion,
    Ignore,
    InvalidPayload,
    PaymentMethod,
)

_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")
#: Ticto's placeholder for a value the buyer or the link did not give.
_NOT_GIVEN = "não informado"

_STATUSES = {
    "authorized": CanonicalStatus.APPROVED,
    "approved": CanonicalStatus.APPROVED,
    "paid": CanonicalStatus.APPROVED,
    "waiting_payment": CanonicalStatus.PENDING_PAYMENT,
    "pix_created": CanonicalStatus.PENDING_PAYMENT,
    "bank_slip_created": CanonicalStatus.PENDING_PAYMENT,
    "refused": CanonicalStatus.REFUSED,
    "refunded": CanonicalStatus.REFUNDED,
    "chargeback": CanonicalStatus.CHARGEBACK,
    "claimed": CanonicalStatus.DISPUTED,
    "canceled": CanonicalStatus.CANCELED,
    "cancelled": CanonicalStatus.CANCELED,
    "subscription_canceled": CanonicalStatus.CANCELED,
    "abandoned_cart": CanonicalStatus.ABANDONED,
    "pix_expired": CanonicalStatus.EXPIRED,
    "bank_slip_expired": CanonicalStatus.EXPIRED,
}
_METHODS = {
    "credit_card": PaymentMethod.CREDIT_CARD,
    "pix": PaymentMethod.PIX,
    "bank_slip": PaymentMethod.BOLETO,
    "boleto": PaymentMethod.BOLETO,
}


class TictoAdapter(GatewayAdapter):
    name = "ticto"
    display_name = "Ticto"
    credential_location = "Ticto > Integrações > Webhook (the webhook's token)"

    def authenticate(self, request: WebhookRequest, secret: str) -> None:
        self.check_body_secret(request, "token", secret, what="webhook token")

    def interpret(self, body: Mapping[str, Any]) -> Accept | Ignore:
        body = _without_placeholders(body)
        order_id = opt_text(body, "order.hash") or require_text(body, "order.id")
        gateway_status = require_text(body, "status")
        status = status_from(_STATUSES, gateway_status)
        if status is None:
            return Ignore(f"unsupported ticto status {gateway_status!r}", order_id)
        event_time = first_time(
            brasilia_time(body, "status_date", _FORMATS),
            brasilia_time(body, "order.order_date", _FORMATS),
        )
        if event_time is None:
            raise InvalidPayload("status_date", "is required")
        customer = opt_object(body, "customer")
        first, last = split_name(opt_text(customer, "name"))
        conversion = Conversion(
            gateway=self.name,
            order_id=order_id,
            status=status,
            gateway_status=gateway_status,
            event_time=event_time,
            # What the buyer paid for the order (gross), not ``producer.amount``.
            amount=amount_from_cents(body, "order.paid_amount"),
            currency="BRL",
            product_id=opt_text(body, "item.product_id"),
            product_name=opt_text(body, "item.product_name"),
            payment_method=payment_method(_METHODS, opt_text(body, "payment_method")),
            tracking=tracking_from(get_path(body, "tracking")),
            client_ip=None,
            user_agent=None,
            user_data=hashed_user_data(
                email=get_path(customer, "email"),
                phone=_phone(customer),
                first_name=first,
                last_name=last,
                city=get_path(customer, "address.city"),
                state=get_path(customer, "address.state"),
                zip_code=get_path(customer, "address.zip_code"),
                # ``is_foreign`` says whether the buyer is abroad; ``address.country`` is then a
                # name ("Portugal"), read as ISO 3166 (an unknown one is dropped, never "br").
                country=opt_text(customer, "address.country")
                if customer.get("is_foreign") is True
                else self.default_country,
            ),
            renewal=count_above_one(_first(body.get("subscriptions")).get("successful_charges")),
            checkout_url=page_url(body.get("checkout_url")),
        )
        return Accept(conversion)


def _without_placeholders(node: Any) -> Any:
    """The payload with every ``"Não Informado"`` as null."""
    if isinstance(node, Mapping):
        return {key: _without_placeholders(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_without_placeholders(value) for value in node]
    if isinstance(node, str) and node.strip().lower() == _NOT_GIVEN:
        return None
    return node


def _phone(customer: Mapping[str, Any]) -> str | None:
    """``{"ddi": "+55", "ddd": "21", "number": "900000000"}`` as one international number."""
    ddi, ddd, number = (opt_text(customer, f"phone.{k}") for k in ("ddi", "ddd", "number"))
    if number is None:
        return None
    return f"+{(ddi or '55').lstrip('+')}{ddd or ''}{number}"


def _first(items: Any) -> Mapping[str, Any]:
    """The first object of a list (Ticto's ``subscriptions``), or an empty one."""
    if isinstance(items, list) and items and isinstance(items[0], Mapping):
        return items[0]
    return {}
