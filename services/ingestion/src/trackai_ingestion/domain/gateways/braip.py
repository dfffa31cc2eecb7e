"""Braip: JSON postbacks with the static ``basic_authentication`` key in the body; amounts in
cents; Brasília local times; the status as text (``trans_status``); one postback per commission
recipient, each with the same sale and its gross value; tracking in ``meta``.
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
    opt_text,
    payment_method,
    require_text,
    status_from,
)
from trackai_ingestion.domain.gateways.people import (
    hashed_user_data,
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

#: ``trans_status`` -> status. The numeric ``trans_status_code`` is not used: the real payload
#: pairs code 1 with "Pagamento Aprovado", which contradicts the published code tables.
_STATUSES = {
    "aguardando pagamento": CanonicalStatus.PENDING_PAYMENT,
    "pagamento aprovado": CanonicalStatus.APPROVED,
    "cancelada": CanonicalStatus.CANCELED,
    "chargeback": CanonicalStatus.CHARGEBACK,
    "devolvida": CanonicalStatus.REFUNDED,
    "estorno pendente": CanonicalStatus.DISPUTED,
    "recusada": CanonicalStatus.REFUSED,
    "recusado": CanonicalStatus.REFUSED,
    "pagamento recusado": CanonicalStatus.REFUSED,
    "abandono de carrinho": CanonicalStatus.ABANDONED,
}
#: The only postback type that reports a sale's status (others: tracking code added, ...).
_STATUS_CHANGED = "STATUS_ALTERADO"
#: ``trans_payment`` -> method (1 is the boleto of the real payload; 2 card; 5 pix).
_METHOD_CODES = {"1": "boleto", "2": "credit_card", "5": "pix"}
_METHODS = {
    "boleto": PaymentMethod.BOLETO,
    "credit_card": PaymentMethod.CREDIT_CARD,
    "pix": PaymentMethod.PIX,
}


class BraipAdapter(GatewayAdapter):
    name = "braip"
    display_name = "Braip"
    credential_location = (
        "Braip > Ferramentas > Postback (the account's chave única / basic authentication key)"
    )

    def authenticate(self, request: WebhookRequest, secret: str) -> None:
        self.check_body_secret(request, "basic_authentication", secret, what="authentication key")

    def interpret(self, body: Mapping[str, Any]) -> Accept | Ignore:
        order_id = require_text(body, "trans_key")
        kind = opt_text(body, "type")
        if kind is not None and kind.upper() != _STATUS_CHANGED:
            return Ignore(f"braip postback type {kind!r} does not change the sale", order_id)
        gateway_status = require_text(body, "trans_status")
        status = status_from(_STATUSES, gateway_status)
        if status is None:
            return Ignore(f"unsupported braip status {gateway_status!r}", order_id)
        event_time = first_time(
            brasilia_time(body, "trans_payment_date", _FORMATS)
            if status is CanonicalStatus.APPROVED
            else None,
            brasilia_time(body, "trans_updatedate", _FORMATS),
            brasilia_time(body, "trans_createdate", _FORMATS),
        )
        if event_time is None:
            raise InvalidPayload("trans_createdate", "is required")
        first, last = split_name(opt_text(body, "client_name"))
        amount = amount_from_cents(body, "trans_total_value")
        conversion = Conversion(
            gateway=self.name,
            order_id=order_id,
            status=status,
            gateway_status=gateway_status,
            event_time=event_time,
            # The buyer's total (plan, order bumps and freight), never a recipient's commission.
            amount=amount if amount is not None else amount_from_cents(body, "trans_value"),
            currency=currency(opt_text(body, "currency"), "currency"),
            product_id=opt_text(body, "product_key"),
            product_name=opt_text(body, "product_name"),
            payment_method=payment_method(_METHODS, _method_key(opt_text(body, "trans_payment"))),
            tracking=tracking_from(get_path(body, "meta"), extra_keys=("utm_id",)),
            client_ip=None,
            user_agent=None,
            user_data=hashed_user_data(
                email=get_path(body, "client_email"),
                phone=_phone(opt_text(body, "client_cel")),
                first_name=first,
                last_name=last,
                city=get_path(body, "client_address_city"),
                state=get_path(body, "client_address_state"),
                zip_code=get_path(body, "client_zip_code"),
                country=opt_text(body, "client_address_country") or self.default_country,
            ),
        )
        return Accept(conversion)


def _method_key(code: str | None) -> str | None:
    return _METHOD_CODES.get(code, code) if code is not None else None


def _phone(value: str | None) -> str | None:
    """``"55 55900000000"``: the country code, a space, then area code and number."""
    if value is None:
        return None
    parts = value.split()
    return f"+{parts[0]}{''.join(parts[1:])}" if len(parts) > 1 else value
