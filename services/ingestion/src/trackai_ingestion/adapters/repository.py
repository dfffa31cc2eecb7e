"""PostgreSQL side of ingestion: the accept transaction (conversion + outbox + receipt), the
receipts of requests that produce no conversion, and the read API's queries.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from trackai_ingestion.adapters.messages import INGEST_EVENT_TYPE, ingest_event
from trackai_ingestion.domain.model import (
    CanonicalStatus,
    Conversion,
    HashedUserData,
    PaymentMethod,
    Tracking,
)
from trackai_kit import outbox
from trackai_kit.topology import INGEST_EVENTS

SCHEMA = "ingestion"
_HASH_COLUMNS = (
    ("email_hash", "em"),
    ("phone_hash", "ph"),
    ("first_name_hash", "fn"),
    ("last_name_hash", "ln"),
    ("city_hash", "ct"),
    ("state_hash", "st"),
    ("zip_hash", "zp"),
    ("country_hash", "country"),
    ("external_id_hash", "external_id"),
)

_INSERT_CONVERSION = f"""
INSERT INTO ingestion.events (
    id, tenant_id, kind, gateway, order_id, status, gateway_status, event_time, received_at,
    amount, currency, product_id, product_name, payment_method,
    {", ".join(column for column, _ in _HASH_COLUMNS)},
    fbclid, fbc, fbp, client_ip, user_agent, utm, tracking)
VALUES ($1, $2, 'conversion', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
        $14, $15, $16, $17, $18, $19, $20, $21, $22,
        $23, $24, $25, $26::inet, $27, $28::jsonb, $29::jsonb)
ON CONFLICT (tenant_id, gateway, order_id, status) WHERE kind = 'conversion' DO NOTHING
RETURNING id
"""  # noqa: S608 - column names are constants

_EXISTING = """
SELECT id FROM ingestion.events
WHERE tenant_id = $1 AND gateway = $2 AND order_id = $3 AND status = $4 AND kind = 'conversion'
"""

_INSERT_RECEIPT = """
INSERT INTO ingestion.webhook_receipts (
    received_at, tenant_id, gateway, outcome, reason, http_status, conversion_id, order_id,
    content_type, body_sha256, body_redacted, headers)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::jsonb)
"""

_SELECT = f"""
SELECT id, tenant_id, received_at, gateway, order_id, status, gateway_status, event_time, amount,
       currency, product_id, product_name, payment_method,
       {", ".join(column for column, _ in _HASH_COLUMNS)},
       fbclid, fbc, fbp, host(client_ip) AS client_ip, user_agent, utm, tracking
FROM ingestion.events
"""  # noqa: S608 - column names are constants


@dataclass(frozen=True)
class Receipt:
    """What we record about one webhook (never the raw body: only its hash and a redacted copy)."""

    received_at: datetime
    gateway: str
    outcome: str
    http_status: int
    body_sha256: str
    body_redacted: dict[str, Any]
    headers: dict[str, str]
    content_type: str | None
    reason: str | None = None
    order_id: str | None = None


@dataclass(frozen=True)
class Accepted:
    conversion_id: uuid.UUID
    duplicate: bool


@dataclass(frozen=True)
class StoredConversion:
    id: uuid.UUID
    tenant_id: uuid.UUID
    received_at: datetime
    conversion: Conversion


class ConversionStore:
    """Writes and reads ``ingestion.events`` / ``webhook_receipts`` / ``outbox``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def accept(
        self, tenant_id: uuid.UUID, conversion: Conversion, receipt: Receipt
    ) -> Accepted:
        """One transaction: the conversion (absorbed if already known), its outbox message when
        new, and the receipt. Returns once committed."""
        candidate = uuid.uuid4()
        async with self._pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                _INSERT_CONVERSION, *_conversion_args(candidate, tenant_id, conversion, receipt)
            )
            if inserted is not None:
                message = ingest_event(
                    message_id=str(candidate),
                    tenant_id=str(tenant_id),
                    received_at=receipt.received_at,
                    conversion=conversion,
                    conversion_id=str(candidate),
                )
                await outbox.enqueue(
                    conn,
                    schema=SCHEMA,
                    routing_key=INGEST_EVENTS,
                    message_id=str(candidate),
                    message_type=INGEST_EVENT_TYPE,
                    body=message.SerializeToString(),
                )
                result = Accepted(candidate, duplicate=False)
            else:
                existing = await conn.fetchval(
                    _EXISTING,
                    tenant_id,
                    conversion.gateway,
                    conversion.order_id,
                    conversion.status.value,
                )
                result = Accepted(existing, duplicate=True)
            outcome = "duplicate" if result.duplicate else "accepted"
            await conn.execute(
                _INSERT_RECEIPT,
                *_receipt_args(tenant_id, receipt, outcome, result.conversion_id),
            )
        return result

    async def record(self, tenant_id: uuid.UUID, receipt: Receipt) -> None:
        """A receipt without a conversion (ignored, test payload, invalid)."""
        async with self._pool.acquire() as conn:
            await conn.execute(_INSERT_RECEIPT, *_receipt_args(tenant_id, receipt, None, None))

    async def get(self, tenant_id: uuid.UUID, conversion_id: uuid.UUID) -> StoredConversion | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                _SELECT + "WHERE id = $1 AND tenant_id = $2 AND kind = 'conversion'",
                conversion_id,
                tenant_id,
            )
        return _stored(row) if row is not None else None

    async def list(
        self,
        tenant_id: uuid.UUID,
        *,
        statuses: Sequence[CanonicalStatus],
        start: datetime | None,
        end: datetime | None,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None,
    ) -> list[StoredConversion]:
        """Newest event time first; keyset pagination on (event_time, id)."""
        conditions = ["tenant_id = $1", "kind = 'conversion'"]
        args: list[Any] = [tenant_id]

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if statuses:
            # Also served by events_tenant_status_time_idx: status is not null on conversions.
            conditions.append(f"status = ANY({arg([s.value for s in statuses])}::text[])")
        if start is not None:
            conditions.append(f"event_time >= {arg(start)}")
        if end is not None:
            conditions.append(f"event_time < {arg(end)}")
        if after is not None:
            conditions.append(f"(event_time, id) < ({arg(after[0])}, {arg(after[1])})")
        sql = (
            _SELECT
            + "WHERE "
            + " AND ".join(conditions)
            + f" ORDER BY event_time DESC, id DESC LIMIT {arg(limit)}"
        )
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(sql, *args)
        return [_stored(row) for row in rows]


def _conversion_args(
    event_id: uuid.UUID, tenant_id: uuid.UUID, conversion: Conversion, receipt: Receipt
) -> list[Any]:
    tracking = conversion.tracking
    other_tracking: dict[str, str] = dict(tracking.extra)
    if tracking.src is not None:
        other_tracking["src"] = tracking.src
    if tracking.sck is not None:
        other_tracking["sck"] = tracking.sck
    return [
        event_id,
        tenant_id,
        conversion.gateway,
        conversion.order_id,
        conversion.status.value,
        conversion.gateway_status,
        conversion.event_time,
        receipt.received_at,
        conversion.amount,
        conversion.currency,
        conversion.product_id,
        conversion.product_name,
        conversion.payment_method.value,
        *(getattr(conversion.user_data, attr) for _, attr in _HASH_COLUMNS),
        tracking.fbclid,
        tracking.fbc,
        tracking.fbp,
        conversion.client_ip,
        conversion.user_agent,
        dict(tracking.utm),
        other_tracking,
    ]


def _receipt_args(
    tenant_id: uuid.UUID, receipt: Receipt, outcome: str | None, conversion_id: uuid.UUID | None
) -> list[Any]:
    return [
        receipt.received_at,
        tenant_id,
        receipt.gateway,
        outcome or receipt.outcome,
        receipt.reason,
        receipt.http_status,
        conversion_id,
        receipt.order_id,
        receipt.content_type,
        receipt.body_sha256,
        receipt.body_redacted,
        receipt.headers,
    ]


def _stored(row: asyncpg.Record) -> StoredConversion:
    tracking: dict[str, str] = dict(row["tracking"] or {})
    src, sck = tracking.pop("src", None), tracking.pop("sck", None)
    amount: Decimal | None = row["amount"]
    conversion = Conversion(
        gateway=row["gateway"],
        order_id=row["order_id"],
        status=CanonicalStatus(row["status"]),
        gateway_status=row["gateway_status"] or "",
        event_time=row["event_time"],
        amount=amount.normalize() if amount is not None else None,
        currency=row["currency"],
        product_id=row["product_id"],
        product_name=row["product_name"],
        payment_method=_payment_method(row["payment_method"]),
        tracking=Tracking(
            src=src,
            sck=sck,
            utm=dict(row["utm"] or {}),
            fbclid=row["fbclid"],
            fbc=row["fbc"],
            fbp=row["fbp"],
            extra=tracking,
        ),
        client_ip=row["client_ip"],
        user_agent=row["user_agent"],
        user_data=HashedUserData(**{attr: row[column] for column, attr in _HASH_COLUMNS}),
    )
    return StoredConversion(row["id"], row["tenant_id"], row["received_at"], conversion)


def _payment_method(value: str | None) -> PaymentMethod:
    try:
        return PaymentMethod(value) if value else PaymentMethod.UNKNOWN
    except ValueError:
        return PaymentMethod.OTHER
