"""Domain conversions and browser hits as protobuf: the ``ingest-events`` messages and the read
API's record."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from google.protobuf.timestamp_pb2 import Timestamp

from trackai.common.v1 import events_pb2 as common_pb
from trackai.ingestion.v1 import events_pb2 as pb
from trackai_ingestion.domain.collect import BrowserHit, HitKind
from trackai_ingestion.domain.model import CanonicalStatus, Conversion, PaymentMethod

INGEST_EVENT_TYPE = pb.IngestEvent.DESCRIPTOR.full_name
STATUS_UPDATE_TYPE = common_pb.StatusUpdate.DESCRIPTOR.full_name
_HIT_TYPES: dict[HitKind, pb.HitType.ValueType] = {
    "page_view": pb.HIT_TYPE_PAGE_VIEW,
    "lead": pb.HIT_TYPE_LEAD,
    "checkout_start": pb.HIT_TYPE_INITIATE_CHECKOUT,
}


def webhook_status(tenant_id: str, gateway: str, outcome: str, at: datetime) -> bytes:
    """The ``trackai.status`` notification of a verified webhook that carried no sale."""
    return common_pb.StatusUpdate(
        tenant_id=tenant_id,
        entity=common_pb.STATUS_ENTITY_WEBHOOK,
        entity_id=gateway,
        status=outcome,
        detail=f"verified {outcome} webhook from {gateway}",
        time=timestamp(at),
    ).SerializeToString()


def received_status(
    tenant_id: str, conversion_id: str, conversion: Conversion, at: datetime
) -> bytes:
    """The ``trackai.status`` "received" notification of a newly stored conversion: ids, gateway
    and statuses only (never the order's customer data)."""
    return common_pb.StatusUpdate(
        tenant_id=tenant_id,
        entity=common_pb.STATUS_ENTITY_CONVERSION,
        entity_id=conversion_id,
        status="received",
        detail=f"{conversion.status.value} sale from {conversion.gateway} received",
        time=timestamp(at),
    ).SerializeToString()


STATUS_TO_PB = {
    CanonicalStatus.APPROVED: pb.CONVERSION_STATUS_APPROVED,
    CanonicalStatus.PENDING_PAYMENT: pb.CONVERSION_STATUS_PENDING_PAYMENT,
    CanonicalStatus.REFUSED: pb.CONVERSION_STATUS_REFUSED,
    CanonicalStatus.REFUNDED: pb.CONVERSION_STATUS_REFUNDED,
    CanonicalStatus.CHARGEBACK: pb.CONVERSION_STATUS_CHARGEBACK,
    CanonicalStatus.CANCELED: pb.CONVERSION_STATUS_CANCELED,
    CanonicalStatus.ABANDONED: pb.CONVERSION_STATUS_ABANDONED,
    CanonicalStatus.COMPLETED: pb.CONVERSION_STATUS_COMPLETED,
    CanonicalStatus.EXPIRED: pb.CONVERSION_STATUS_EXPIRED,
    CanonicalStatus.DISPUTED: pb.CONVERSION_STATUS_DISPUTED,
}
PB_TO_STATUS = {value: key for key, value in STATUS_TO_PB.items()}
_METHOD_TO_PB = {
    PaymentMethod.CREDIT_CARD: pb.PAYMENT_METHOD_CREDIT_CARD,
    PaymentMethod.DEBIT_CARD: pb.PAYMENT_METHOD_DEBIT_CARD,
    PaymentMethod.PIX: pb.PAYMENT_METHOD_PIX,
    PaymentMethod.BOLETO: pb.PAYMENT_METHOD_BOLETO,
    PaymentMethod.PAYPAL: pb.PAYMENT_METHOD_PAYPAL,
    PaymentMethod.OTHER: pb.PAYMENT_METHOD_OTHER,
    PaymentMethod.UNKNOWN: pb.PAYMENT_METHOD_UNSPECIFIED,
}


def timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def amount_text(amount: Decimal | None) -> str:
    """Plain decimal string with at least two decimals ("5.00", "29.90", "1.2345"); "" if absent."""
    if amount is None:
        return ""
    if amount == amount.quantize(Decimal("0.01")):
        amount = amount.quantize(Decimal("0.01"))
    return format(amount, "f")


def conversion_pb(conversion: Conversion, conversion_id: str) -> pb.Conversion:
    tracking = conversion.tracking
    user = conversion.user_data
    return pb.Conversion(
        order_id=conversion.order_id,
        gateway=conversion.gateway,
        status=STATUS_TO_PB[conversion.status],
        gateway_status=conversion.gateway_status,
        event_time=timestamp(conversion.event_time),
        amount=amount_text(conversion.amount),
        currency=conversion.currency or "",
        product_id=conversion.product_id or "",
        product_name=conversion.product_name or "",
        payment_method=_METHOD_TO_PB[conversion.payment_method],
        tracking=pb.TrackingParameters(
            src=tracking.src or "",
            sck=tracking.sck or "",
            utm_source=tracking.utm.get("utm_source", ""),
            utm_medium=tracking.utm.get("utm_medium", ""),
            utm_campaign=tracking.utm.get("utm_campaign", ""),
            utm_content=tracking.utm.get("utm_content", ""),
            utm_term=tracking.utm.get("utm_term", ""),
            fbclid=tracking.fbclid or "",
            fbc=tracking.fbc or "",
            fbp=tracking.fbp or "",
            extra=dict(tracking.extra),
        ),
        client_ip=conversion.client_ip or "",
        user_agent=conversion.user_agent or "",
        user_data=pb.HashedUserData(
            em=user.em or "",
            ph=user.ph or "",
            fn=user.fn or "",
            ln=user.ln or "",
            ct=user.ct or "",
            st=user.st or "",
            zp=user.zp or "",
            country=user.country or "",
            external_id=user.external_id or "",
            db=user.db or "",
            ge=user.ge or "",
        ),
        conversion_id=conversion_id,
        renewal=conversion.renewal,
        checkout_url=conversion.checkout_url or "",
    )


def ingest_event(
    *, message_id: str, tenant_id: str, received_at: datetime, conversion: Conversion,
    conversion_id: str,
) -> pb.IngestEvent:  # fmt: skip
    return pb.IngestEvent(
        message_id=message_id,
        tenant_id=tenant_id,
        received_time=timestamp(received_at),
        conversion=conversion_pb(conversion, conversion_id),
    )


def hit_event(hit: BrowserHit, message_id: str, received_at: datetime) -> pb.IngestEvent:
    """The ``ingest-events`` message of a stored hit."""
    tracking = pb.TrackingParameters(
        src=hit.src or "",
        sck=hit.sck or "",
        fbclid=hit.fbclid or "",
        fbc=hit.fbc or "",
        fbp=hit.fbp or "",
    )
    for key, value in hit.utm.items():  # keys are UTM_KEYS, the proto's utm_* field names
        setattr(tracking, key, value)
    message = pb.IngestEvent(
        message_id=message_id,
        tenant_id=hit.tenant_id,
        hit=pb.BrowserHit(
            hit_type=_HIT_TYPES[hit.kind],
            session_id=hit.session_id,
            event_id=hit.event_id,
            page_url=hit.page_url,
            referrer=hit.referrer or "",
            tracking=tracking,
            client_ip=hit.client_ip or "",
            user_agent=hit.user_agent or "",
            user_data=pb.HashedUserData(
                em=hit.email_hash or "", ph=hit.phone_hash or "", external_id=hit.visitor_id or ""
            ),
            funnel_id=hit.funnel_id or "",
        ),
    )
    message.received_time.FromDatetime(received_at)
    message.hit.event_time.FromDatetime(hit.event_time)
    return message
