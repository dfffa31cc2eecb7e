"""The ``ingest-events`` consumer: decodes ``IngestEvent`` messages and calls the use cases.

The kit acknowledges a message after this handler returns (the use case committed first). Only
a message that can never be processed is poison (:class:`BadMessage`: undecodable or invalid, or
the tenant registry definitively refused the matcher): it is dead-lettered to
``ingest-events.dlq`` (``trackai dlq list|replay --queue ingest-events``). Everything else (the
database restarting or failing over, the registry unreachable, a bug) is retried by the kit
through the ``ingest-events.retry.*`` delay queues with back-off.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

import asyncpg
import grpc
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from trackai.ingestion.v1 import events_pb2 as ingest
from trackai_kit.amqp import REPLAYED_BY_HEADER, IncomingMessage, Poison, RetryLater, retry_state
from trackai_kit.failures import is_transient_rpc_error, rpc_error_text
from trackai_kit.identity import canonical_gateway, canonical_order_id, canonical_tenant_id
from trackai_kit.logging import bind_context, get_logger
from trackai_kit.pii import is_sha256_hex
from trackai_matcher.domain.model import Hit, HitKind, Purchase, Tracking
from trackai_matcher.service_layer.ingest import MatchConversion, SessionNotSeenYet

INGEST_TYPE = ingest.IngestEvent.DESCRIPTOR.full_name
log = get_logger(__name__)

_HIT_KINDS = {
    ingest.HIT_TYPE_PAGE_VIEW: HitKind.PAGE_VIEW,
    ingest.HIT_TYPE_LEAD: HitKind.LEAD,
    ingest.HIT_TYPE_INITIATE_CHECKOUT: HitKind.INITIATE_CHECKOUT,
}


class BadMessage(Poison):
    """A message that can never be processed (dead-lettered with this reason)."""


def _time(ts: Timestamp, fallback: dt.datetime | None) -> dt.datetime:
    if ts.seconds or ts.nanos:
        return ts.ToDatetime(tzinfo=dt.UTC)
    if fallback is None:
        raise BadMessage("message carries no time")
    return fallback


def _enum_word(name: str, prefix: str) -> str:
    return name.removeprefix(prefix).lower() if not name.endswith("_UNSPECIFIED") else ""


def tracking_from_proto(t: ingest.TrackingParameters) -> Tracking:
    utm = {
        key: value
        for key, value in (
            ("utm_source", t.utm_source),
            ("utm_medium", t.utm_medium),
            ("utm_campaign", t.utm_campaign),
            ("utm_content", t.utm_content),
            ("utm_term", t.utm_term),
        )
        if value
    }
    return Tracking(
        src=t.src, sck=t.sck, utm=utm, fbclid=t.fbclid, fbc=t.fbc, fbp=t.fbp, extra=dict(t.extra)
    )


def _hash_or_none(value: str) -> str | None:
    return value if value and is_sha256_hex(value) else None


def hit_from_proto(event: ingest.IngestEvent, received: dt.datetime | None) -> Hit | None:
    h = event.hit
    if not h.session_id or len(h.session_id) > 128:
        return None
    u = h.user_data
    return Hit(
        tenant_id=canonical_tenant_id(event.tenant_id),
        session_id=h.session_id,
        kind=_HIT_KINDS.get(h.hit_type, HitKind.PAGE_VIEW),
        # Our clock, not the browser's: a skewed device must not move a click past a purchase.
        seen_at=received or _time(h.event_time, None),
        page_url=h.page_url,
        referrer=h.referrer,
        tracking=tracking_from_proto(h.tracking),
        client_ip=h.client_ip or None,
        user_agent=h.user_agent,
        email_hash=_hash_or_none(u.em),
        phone_hash=_hash_or_none(u.ph),
        external_id=u.external_id[:128] or None,
        funnel_id=h.funnel_id or None,
    )


def purchase_from_proto(event: ingest.IngestEvent, received: dt.datetime | None) -> Purchase:
    c = event.conversion
    u = c.user_data
    hashed = {
        key: value
        for key in ("em", "ph", "fn", "ln", "ct", "st", "zp", "country", "db", "ge", "external_id")
        if (value := getattr(u, key)) and is_sha256_hex(value)
    }
    return Purchase(
        tenant_id=canonical_tenant_id(event.tenant_id),
        gateway=canonical_gateway(c.gateway),
        order_id=canonical_order_id(c.order_id),
        conversion_id=c.conversion_id or None,
        status=_enum_word(ingest.ConversionStatus.Name(c.status), "CONVERSION_STATUS_"),
        payment_method=_enum_word(ingest.PaymentMethod.Name(c.payment_method), "PAYMENT_METHOD_"),
        event_time=_time(c.event_time, received),
        amount=c.amount,
        currency=c.currency,
        product_id=c.product_id,
        funnel_id=c.funnel_id or None,
        tracking=tracking_from_proto(c.tracking),
        client_ip=c.client_ip or None,
        user_agent=c.user_agent,
        hashed=hashed,
        received_at=received,
        renewal=c.renewal,
        checkout_url=c.checkout_url,
    )


class IngestConsumer:
    """``await consumer(message)`` for :meth:`trackai_kit.amqp.AmqpClient.consume`."""

    def __init__(
        self, service: MatchConversion, reconnect: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self._service = service
        # Drops the pool's connections: after a failover the old primary answers read-only, and
        # the pool would keep handing out connections to it.
        self._reconnect = reconnect

    async def __call__(self, message: IncomingMessage) -> None:
        if message.type and message.type != INGEST_TYPE:
            raise BadMessage(f"unexpected message type {message.type!r}")
        try:
            event = ingest.IngestEvent.FromString(message.body)
        except DecodeError as exc:
            raise BadMessage(f"undecodable IngestEvent: {exc}") from exc
        # The tenant labels this message's log lines and Sentry events (the kit clears it).
        bind_context(tenant_id=event.tenant_id)
        message_id = event.message_id or message.message_id or ""
        if not message_id:
            raise BadMessage("IngestEvent without message_id")
        received = _time(event.received_time, None) if event.HasField("received_time") else None
        replayed_by = (message.headers or {}).get(REPLAYED_BY_HEADER)
        if replayed_by:
            # The audit trail of `trackai dlq replay --queue ingest-events --by <name>`.
            log.info(
                "replayed dead letter received", message_id=message_id, replayed_by=replayed_by
            )
        try:
            await self._dispatch(message_id, event, received, retry_state(message)[0])
        except SessionNotSeenYet as exc:
            raise RetryLater(str(exc)) from exc
        except (ValueError, asyncpg.DataError) as exc:
            # Invalid content: our own checks, or PostgreSQL refusing a value (SQLSTATE class 22).
            raise BadMessage(f"{type(exc).__name__}: {exc}") from exc
        except grpc.aio.AioRpcError as exc:
            if is_transient_rpc_error(exc):
                raise
            raise BadMessage(f"tenant registry refused the matcher: {rpc_error_text(exc)}") from exc
        except asyncpg.ReadOnlySQLTransactionError:
            if self._reconnect is not None:
                await self._reconnect()
            raise

    async def _dispatch(
        self,
        message_id: str,
        event: ingest.IngestEvent,
        received: dt.datetime | None,
        retries: int,
    ) -> None:
        kind = event.WhichOneof("payload")
        if kind == "hit":
            hit = hit_from_proto(event, received)
            if hit is None:
                log.warning("hit without a usable session id ignored", message_id=message_id)
                return
            await self._service.handle_hit(message_id, hit)
        elif kind == "conversion":
            await self._service.handle_conversion(
                message_id, purchase_from_proto(event, received), waited=retries
            )
        else:
            raise BadMessage("IngestEvent without payload")
