"""Greenn: JSON ``saleUpdated`` webhooks; amounts in reais; Brasília local times; tracking in
``saleMetas`` (a list of ``{"meta_key", "meta_value"}``).

Greenn documents no authentication. Assumed, and said so in docs/runbooks/webhooks.md: the tenant's
secret arrives as a ``token`` field in the body or a ``token`` header (Greenn's panel, or a relay,
adds it); a tenant that can set neither stores only a signing secret and sends our
``X-Signature`` (``t=...,v1=...``) through a relay.
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
    brasilia_time,
    first_time,
    get_path,
    opt_object,
    opt_text,
    payment_method,
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

_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")

_STATUSES = {
    "paid": CanonicalStatus.APPROVED,
    "approved": CanonicalStatus.APPROVED,
    "waiting_payment": CanonicalStatus.PENDING_PAYMENT,
    "pending": CanonicalStatus.PENDING_PAYMENT,
    "refused": CanonicalStatus.REFUSED,
    "refunded": CanonicalStatus.REFUNDED,
    "chargedback": CanonicalStatus.CHARGEBACK,
    "chargeback": CanonicalStatus.CHARGEBACK,
    "canceled": CanonicalStatus.CANCELED,
    "cancelled": CanonicalStatus.CANCELED,
    "abandoned": CanonicalStatus.ABANDONED,
    "expired": CanonicalStatus.EXPIRED,
}
_METHODS = {
    "credit_card": PaymentMethod.CREDIT_CARD,
    "pix": PaymentMethod.PIX,
    "boleto": PaymentMethod.BOLETO,
    "bank_slip": PaymentMethod.BOLETO,
    "paypal": PaymentMethod.PAYPAL,
}


class GreennAdapter(GatewayAdapter):
    name = "greenn"
    display_name = "Greenn"
    credential_location = (
        "the secret you chose for this webhook (Greenn has no token of its own: put it in the "
        "webhook's `token` header or body field)"
    )

    def authenticate(self, request: WebhookRequest, secret: str) -> None:
        header = request.headers.get("token")
        if header is not None:
            if not secrets_match(header.strip(), secret):
                raise AuthenticationFailed(
                    "greenn_token",
                    "Greenn `token` header does not match the secret stored for this tenant; "
                    f"use {self.credential_location}",
                )
            return
        self.check_body_secret(request, "token", secret, what="webhook token")

    def interpret(self, body: Mapping[str, Any]) -> Accept | Ignore:
        order_id = require_text(body, "sale.id")
        kind = opt_text(body, "type")
        if kind is not None and kind.lower() != "sale":
            return Ignore(f"greenn webhook type {kind!r} is not a sale", order_id)
        gateway_status = opt_text(body, "currentStatus") or require_text(body, "sale.status")
        status = status_from(_STATUSES, gateway_status)
        if status is None:
            return Ignore(f"unsupported greenn status {gateway_status!r}", order_id)
        event_time = first_time(
            brasilia_time(body, "sale.updated_at", _FORMATS),
            brasilia_time(body, "sale.created_at", _FORMATS),
        )
        if event_time is None:
            raise InvalidPayload("sale.created_at", "is required")
        client = opt_object(body, "client")
        first, last = split_name(opt_text(client, "name"))
        conversion = Conversion(
            gateway=self.name,
            order_id=order_id,
            status=status,
            gateway_status=gateway_status,
            event_time=event_time,
            amount=amount_from_units(body, "sale.amount"),
            currency="BRL",
            product_id=opt_text(body, "product.id"),
            product_name=opt_text(body, "product.name"),
            payment_method=payment_method(_METHODS, opt_text(body, "sale.method")),
            tracking=tracking_from(_metas(body.get("saleMetas")), extra_keys=("utm_id",)),
            client_ip=None,
            user_agent=None,
            user_data=hashed_user_data(
                email=get_path(client, "email"),
                phone=get_path(client, "cellphone"),
                first_name=first,
                last_name=last,
                city=get_path(client, "city"),
                state=get_path(client, "uf"),
                zip_code=get_path(client, "zipcode"),
                country=self.default_country,
            ),
        )
        return Accept(conversion)


def _metas(value: Any) -> dict[str, Any]:
    """``[{"meta_key": "src", "meta_value": "..."}, ...]`` as ``{"src": "...", ...}``; entries of
    another shape are skipped."""
    if not isinstance(value, list):
        return {}
    metas: dict[str, Any] = {}
    for item in value:
        if isinstance(item, Mapping):
            key = text(item.get("meta_key"))
            if key is not None:
                metas[key] = item.get("meta_value")
    return metas
