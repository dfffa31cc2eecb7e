"""Perfect Pay: a static ``token`` in the JSON body; amounts in reais; Brasília local times; the
buyer's phone split in extension, area code and number.
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
    count_above_one,
    currency,
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
    client_ip,
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

#: ``sale_status_enum_key`` -> status.
_STATUS_KEYS = {
    "pending": CanonicalStatus.PENDING_PAYMENT,
    "approved": CanonicalStatus.APPROVED,
    "in_process": CanonicalStatus.PENDING_PAYMENT,
    "in_mediation": CanonicalStatus.DISPUTED,
    "rejected": CanonicalStatus.REFUSED,
    "cancelled": CanonicalStatus.CANCELED,
    "canceled": CanonicalStatus.CANCELED,
    "refunded": CanonicalStatus.REFUNDED,
    "authorized": CanonicalStatus.PENDING_PAYMENT,
    "charged_back": CanonicalStatus.CHARGEBACK,
    "chargeback": CanonicalStatus.CHARGEBACK,
    # Guarantee period over: not a new purchase.
    "completed": CanonicalStatus.COMPLETED,
    "precheckout": CanonicalStatus.ABANDONED,
    "expired": CanonicalStatus.EXPIRED,
    "in_review": CanonicalStatus.PENDING_PAYMENT,
}
#: ``sale_status_enum`` -> key, for payloads that carry only the number.
_STATUS_ENUM = {
    "1": "pending",
    "2": "approved",
    "3": "in_process",
    "4": "in_mediation",
    "5": "rejected",
    "6": "cancelled",
    "7": "refunded",
    "8": "authorized",
    "9": "charged_back",
    "10": "completed",
    "11": "checkout_error",
    "12": "precheckout",
    "13": "expired",
    "16": "in_review",
}
_METHODS = {
    "credit_card": PaymentMethod.CREDIT_CARD,
    "billet": PaymentMethod.BOLETO,
    "boleto": PaymentMethod.BOLETO,
    "pix": PaymentMethod.PIX,
    "debit_card": PaymentMethod.DEBIT_CARD,
    "paypal": PaymentMethod.PAYPAL,
}
#: ``payment_type_enum`` -> key, when the key is absent.
_METHOD_ENUM = {"1": "credit_card", "2": "billet", "7": "pix"}
_TRACKING_ALIASES = {"_fbc": "fbc", "_fbp": "fbp"}


class PerfectPayAdapter(GatewayAdapter):
    name = "perfectpay"
    display_name = "Perfect Pay"
    credential_location = "Perfect Pay > Ferramentas > Webhook (the 32-character token)"

    def authenticate(self, request: WebhookRequest, secret: str) -> None:
        self.check_body_secret(request, "token", secret, what="webhook token")

    def interpret(self, body: Mapping[str, Any]) -> Accept | Ignore:
        order_id = require_text(body, "code")
        key = opt_text(body, "sale_status_enum_key") or _STATUS_ENUM.get(
            opt_text(body, "sale_status_enum") or ""
        )
        if key is None:
            raise InvalidPayload("sale_status_enum", "is required")
        status = status_from(_STATUS_KEYS, key)
        if status is None:
            return Ignore(f"unsupported perfectpay sale status {key!r}", order_id)
        event_time = first_time(
            brasilia_time(body, "date_approved", _FORMATS)
            if status is CanonicalStatus.APPROVED
            else None,
            brasilia_time(body, "date_created", _FORMATS),
        )
        if event_time is None:
            raise InvalidPayload("date_created", "is required")
        customer = opt_object(body, "customer")
        first, last = split_name(opt_text(customer, "full_name"))
        method_key = opt_text(body, "payment_type_enum_key") or _METHOD_ENUM.get(
            opt_text(body, "payment_type_enum") or ""
        )
        conversion = Conversion(
            gateway=self.name,
            order_id=order_id,
            status=status,
            gateway_status=key,
            event_time=event_time,
            amount=amount_from_units(body, "sale_amount"),
            currency=currency(opt_text(body, "currency_enum_key"), "currency_enum_key"),
            product_id=opt_text(body, "product.code"),
            product_name=opt_text(body, "product.name"),
            payment_method=payment_method(_METHODS, method_key),
            tracking=tracking_from(
                get_path(body, "metadata"),
                extra_keys=("utm_perfect", "ttclid", "xcod"),
                aliases=_TRACKING_ALIASES,
            ),
            client_ip=client_ip(get_path(customer, "ip")),
            user_agent=_user_agent(customer),
            user_data=hashed_user_data(
                email=get_path(customer, "email"),
                phone=_phone(customer),
                first_name=first,
                last_name=last,
                city=get_path(customer, "city"),
                state=get_path(customer, "state"),
                zip_code=get_path(customer, "zip_code"),
                country=opt_text(customer, "country") or self.default_country,
                birth_date=get_path(customer, "birthday") or get_path(customer, "date_birth"),
                gender=get_path(customer, "gender") or get_path(customer, "sex"),
                date_order=self.date_order,
            ),
            renewal=count_above_one(get_path(body, "subscription.charges_made")),
        )
        return Accept(conversion)


def _user_agent(customer: Mapping[str, Any]) -> str | None:
    """The buyer's browser, whole (a user agent cut at 200 characters is another browser)."""
    value = customer.get("user_agent")
    agent = value.strip() if isinstance(value, str) else ""
    return agent if 0 < len(agent) <= 1024 else None


def _phone(customer: Mapping[str, Any]) -> str | None:
    """``+<extension><area><number>`` when split (Perfect Pay's usual form), else formatted."""
    parts = [text(customer.get(k)) for k in ("phone_extension", "phone_area_code", "phone_number")]
    if parts[1] and parts[2]:
        return f"+{parts[0] or '55'}{parts[1]}{parts[2]}"
    # "phone_formated" is Perfect Pay's spelling.
    return text(customer.get("phone_formated_ddi")) or text(customer.get("phone_formated"))
