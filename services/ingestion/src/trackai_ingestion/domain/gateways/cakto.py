"""Cakto: the webhook ``secret`` inside the JSON body; amounts in reais (decimal); ISO times with
offset; ``data`` is an array when an order bump is dispatched together with its main order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
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

_EVENTS = {
    "purchase_approved": CanonicalStatus.APPROVED,
    "subscription_renewed": CanonicalStatus.APPROVED,
    "purchase_refused": CanonicalStatus.REFUSED,
    "refund": CanonicalStatus.REFUNDED,
    "chargeback": CanonicalStatus.CHARGEBACK,
    "pix_gerado": CanonicalStatus.PENDING_PAYMENT,
    "boleto_gerado": CanonicalStatus.PENDING_PAYMENT,
    "picpay_gerado": CanonicalStatus.PENDING_PAYMENT,
    "checkout_abandonment": CanonicalStatus.ABANDONED,
    "subscription_canceled": CanonicalStatus.CANCELED,
}
#: Which timestamp of ``data`` says when each status happened.
_TIME_FIELDS = {
    CanonicalStatus.APPROVED: "paidAt",
    CanonicalStatus.REFUNDED: "refundedAt",
    CanonicalStatus.CHARGEBACK: "chargedbackAt",
    CanonicalStatus.CANCELED: "canceledAt",
}
_METHODS = {
    "credit_card": PaymentMethod.CREDIT_CARD,
    "pix": PaymentMethod.PIX,
    "boleto": PaymentMethod.BOLETO,
    "debit_card": PaymentMethod.DEBIT_CARD,
}
#: Cakto's documented example, which its panel sends as a test.
_TEST_ORDER_ID = "87956abe-940e-4e8b-8a27-82c482920f64"
_TEST_EMAIL = "john.doe@example.com"


class CaktoAdapter(GatewayAdapter):
    name = "cakto"
    display_name = "Cakto"
    credential_location = "Cakto > Integrações > Webhooks (the webhook's secret)"

    def authenticate(self, request: WebhookRequest, secret: str) -> None:
        self.check_body_secret(request, "secret", secret, what="webhook secret")

    def interpret(self, body: Mapping[str, Any]) -> Accept | Ignore:
        event = require_text(body, "event")
        orders, path = _orders(body)
        main = orders[0]
        order_id = opt_text(main, "id")
        if order_id is None:
            raise InvalidPayload(f"{path}.id", "is required")
        status = status_from(_EVENTS, event)
        if status is None:
            return Ignore(f"unsupported cakto event {event!r}", order_id)
        with _fields_of(path):
            event_time = first_time(
                iso_time(main, field) if (field := _TIME_FIELDS.get(status)) else None,
                iso_time(main, "createdAt"),
            )
            if event_time is None:
                raise InvalidPayload("createdAt", "is required")
            customer = opt_object(main, "customer")
            first, last = split_name(opt_text(customer, "name"))
            conversion = Conversion(
                gateway=self.name,
                order_id=order_id,
                status=status,
                gateway_status=event,
                event_time=event_time,
                amount=_total(orders),
                currency=currency(opt_text(main, "currency"), "currency"),
                product_id=opt_text(main, "product.id"),
                product_name=opt_text(main, "product.name"),
                payment_method=payment_method(_METHODS, opt_text(main, "paymentMethod")),
                tracking=tracking_from(main, extra_keys=("src",)),
                client_ip=None,
                user_agent=None,
                user_data=hashed_user_data(
                    email=get_path(customer, "email"),
                    phone=get_path(customer, "phone"),
                    first_name=first,
                    last_name=last,
                    city=get_path(main, "address.city"),
                    state=get_path(main, "address.state"),
                    zip_code=get_path(main, "address.zipcode"),
                    country=opt_text(main, "address.country") or self.default_country,
                    birth_date=get_path(customer, "birthDate"),
                    date_order=self.date_order,
                ),
                checkout_url=page_url(get_path(main, "checkoutUrl")),
            )
        test = None
        if order_id == _TEST_ORDER_ID or (opt_text(customer, "email") or "").lower() == _TEST_EMAIL:
            test = "cakto documentation example payload (its fixed order or sample buyer)"
        return Accept(conversion, test)


@contextmanager
def _fields_of(path: str) -> Iterator[None]:
    """Name the fields read from the main order by their place in the body (``data.paidAt``)."""
    try:
        yield
    except InvalidPayload as exc:
        raise InvalidPayload(f"{path}.{exc.field}", exc.detail) from exc


def _orders(body: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], str]:
    """The orders of the dispatch, main order first (``offer_type == "main"``)."""
    data = body.get("data")
    if isinstance(data, Mapping):
        return [data], "data"
    if isinstance(data, list) and data and all(isinstance(item, Mapping) for item in data):
        ordered = sorted(data, key=lambda item: item.get("offer_type") != "main")
        return ordered, "data[0]"
    raise InvalidPayload("data", "is required and must be an object or a non-empty array of orders")


def _total(orders: list[Mapping[str, Any]]) -> Decimal | None:
    """What the buyer paid in this checkout: the main order plus bumps dispatched with it."""
    amounts = [amount_from_units(order, "amount") for order in orders]
    if all(amount is None for amount in amounts):
        return None
    if any(amount is None for amount in amounts):
        raise InvalidPayload("amount", "is required on every order of the dispatch")
    return sum((amount for amount in amounts if amount is not None), Decimal(0))
