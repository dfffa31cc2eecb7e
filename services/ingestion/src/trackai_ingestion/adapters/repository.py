"""PostgreSQL side of ingestion: the accept transaction (conversion + outbox + receipt), the
receipts of requests that produce no conversion, and the read API's queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, overload

import asyncpg

from trackai_ingestion.adapters.group_commit import GroupCommit
from trackai_ingestion.adapters.messages import (
    INGEST_EVENT_TYPE,
    STATUS_UPDATE_TYPE,
    ingest_event,
    received_status,
    webhook_status,
)
from trackai_ingestion.domain.model import (
    CanonicalStatus,
    Conversion,
    HashedUserData,
    PaymentMethod,
    Tracking,
)
from trackai_ingestion.service_layer.ports import (
    Accepted,
    Receipt,
    StorageUnavailable,
    StoredConversion,
)
from trackai_kit import outbox
from trackai_kit.postgres import CONNECTION_TROUBLE, Params
from trackai_kit.topology import INGEST_EVENTS, STATUS_EXCHANGE

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
    ("birth_date_hash", "db"),
    ("gender_hash", "ge"),
)

_RECEIPT_COLUMNS = """tenant_id, outcome, conversion_id, received_at, gateway, reason, http_status,
    order_id, content_type, body_sha256, body_redacted, headers"""

_INSERT_RECEIPT = f"""
INSERT INTO ingestion.webhook_receipts ({_RECEIPT_COLUMNS})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::jsonb)
"""  # noqa: S608 - column names are constants

#: One input row of :data:`_ACCEPT`: (column, PostgreSQL type), in the order of `_accept_row`.
_ACCEPT_INPUT = (
    ("id", "uuid"),
    ("tenant_id", "uuid"),
    ("gateway", "text"),
    ("order_id", "text"),
    ("status", "text"),
    ("gateway_status", "text"),
    ("event_time", "timestamptz"),
    ("received_at", "timestamptz"),
    ("amount", "numeric"),
    ("currency", "text"),
    ("product_id", "text"),
    ("product_name", "text"),
    ("payment_method", "text"),
    *((column, "text") for column, _ in _HASH_COLUMNS),
    ("fbclid", "text"),
    ("fbc", "text"),
    ("fbp", "text"),
    ("client_ip", "inet"),
    ("user_agent", "text"),
    ("utm", "jsonb"),
    ("tracking", "jsonb"),
    ("renewal", "boolean"),
    ("checkout_url", "text"),
    # The outbox message (trackai_kit.outbox.enqueue_params).
    ("message_id", "text"),
    ("exchange", "text"),
    ("routing_key", "text"),
    ("message_type", "text"),
    ("body", "bytea"),
    ("headers", "jsonb"),
    # Its "received" StatusUpdate on trackai.status (the same columns, prefixed "s_").
    ("s_message_id", "text"),
    ("s_exchange", "text"),
    ("s_routing_key", "text"),
    ("s_message_type", "text"),
    ("s_body", "bytea"),
    ("s_headers", "jsonb"),
    # The receipt (_receipt_details).
    ("r_received_at", "timestamptz"),
    ("r_gateway", "text"),
    ("r_reason", "text"),
    ("r_http_status", "int"),
    ("r_order_id", "text"),
    ("r_content_type", "text"),
    ("r_body_sha256", "text"),
    ("r_body_redacted", "jsonb"),
    ("r_headers", "jsonb"),
)
_INPUT_NAMES = [column for column, _ in _ACCEPT_INPUT]
_EVENT_COLUMNS = _INPUT_NAMES[: _INPUT_NAMES.index("message_id")]
_STATUS_INPUT = ", ".join(f"s_{column} AS {column}" for column in outbox.ENQUEUE_COLUMNS)
_RECEIPT_INPUT = ", ".join(_INPUT_NAMES[_INPUT_NAMES.index("r_received_at") :])
_UNNEST_ARGS = ", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate(_ACCEPT_INPUT, 1))

# Accept transactions of several webhooks as ONE statement (one round trip, one commit): each
# row's conversion, its outbox messages only when it is new (``ingest-events``, and "received" on
# ``trackai.status`` for open console pages), and its receipt pointing at the new or the existing
# conversion. A known order (same tenant, gateway, order and status) is found through
# the unique index that arbitrates the conflict, never through a separate lookup whose plan would
# depend on the table's statistics: ``DO UPDATE`` with an unchanged value makes the insert return
# the existing row's id (a duplicate costs one row version, and is rare). A concurrent accept of
# the same order that commits meanwhile is waited for and then found the same way. A returned id
# other than the row's own candidate id means "already known".
_ACCEPT = f"""
WITH input AS (
    SELECT * FROM unnest({_UNNEST_ARGS})
        WITH ORDINALITY AS i({", ".join(column for column, _ in _ACCEPT_INPUT)}, n)
), upserted AS (
    INSERT INTO ingestion.events AS e (kind, {", ".join(_EVENT_COLUMNS)})
    SELECT 'conversion', {", ".join(_EVENT_COLUMNS)} FROM input ORDER BY n
    ON CONFLICT (tenant_id, gateway, order_id, status) WHERE kind = 'conversion'
        DO UPDATE SET kind = e.kind
    RETURNING e.id, e.tenant_id, e.gateway, e.order_id, e.status
), target AS (
    SELECT input.n, u.id, u.id <> input.id AS duplicate
    FROM input JOIN upserted u USING (tenant_id, gateway, order_id, status)
), to_enqueue AS (
    SELECT input.* FROM input JOIN target USING (n) WHERE NOT target.duplicate
), outboxed AS (
    {outbox.enqueue_from_sql(SCHEMA, "to_enqueue")}
), statuses AS (
    SELECT {_STATUS_INPUT} FROM to_enqueue
), status_outboxed AS (
    {outbox.enqueue_from_sql(SCHEMA, "statuses")}
), receipt AS (
    INSERT INTO ingestion.webhook_receipts ({_RECEIPT_COLUMNS})
    SELECT input.tenant_id, CASE WHEN duplicate THEN 'duplicate' ELSE 'accepted' END,
           target.id, {_RECEIPT_INPUT}
    FROM target JOIN input USING (n)
)
SELECT n, id, duplicate FROM target
"""  # noqa: S608 - identifiers are constants, values are parameters

#: How often a webhook's accept is run when a concurrent duplicate hid the conversion.
_ACCEPT_ATTEMPTS = 3
#: Webhooks written by one accept statement at most, and accept statements in flight at once.
MAX_BATCH = 64
MAX_IN_FLIGHT = 4

_SELECT = f"""
SELECT id, tenant_id, received_at, gateway, order_id, status, gateway_status, event_time, amount,
       currency, product_id, product_name, payment_method,
       {", ".join(column for column, _ in _HASH_COLUMNS)},
       fbclid, fbc, fbp, host(client_ip) AS client_ip, user_agent, utm, tracking, renewal,
       checkout_url
FROM ingestion.events
"""  # noqa: S608 - column names are constants


@dataclass
class _Pending:
    """One webhook waiting for an accept statement."""

    key: tuple[uuid.UUID, str, str, str]
    row: list[Any]
    done: asyncio.Future[Accepted]
    attempts: int = 0


def accept_row(tenant_id: uuid.UUID, conversion: Conversion, receipt: Receipt) -> list[Any]:
    """One input row of the accept statement: the conversion under a new id, its outbox messages
    (the ``ingest-events`` body and the ``conversion.<tenant>`` "received" status, in the caller's
    trace context) and the receipt's details."""
    candidate = uuid.uuid4()
    message = ingest_event(
        message_id=str(candidate),
        tenant_id=str(tenant_id),
        received_at=receipt.received_at,
        conversion=conversion,
        conversion_id=str(candidate),
    )
    return [
        *_conversion_args(candidate, tenant_id, conversion, receipt),
        *outbox.enqueue_params(
            routing_key=INGEST_EVENTS,
            message_id=str(candidate),
            message_type=INGEST_EVENT_TYPE,
            body=message.SerializeToString(),
            headers={outbox.TENANT_HEADER: str(tenant_id)},
        ),
        *outbox.enqueue_params(
            exchange=STATUS_EXCHANGE,
            routing_key=f"conversion.{tenant_id}",
            message_id=f"received.{candidate}",
            message_type=STATUS_UPDATE_TYPE,
            body=received_status(str(tenant_id), str(candidate), conversion, receipt.received_at),
            headers={outbox.TENANT_HEADER: str(tenant_id)},
        ),
        *_receipt_details(receipt),
    ]


@contextlib.contextmanager
def _unavailable_as_port_error() -> Iterator[None]:
    """The database is away or no connection came in time: the gateway is asked to retry."""
    try:
        yield
    except CONNECTION_TROUBLE as exc:
        raise StorageUnavailable(type(exc).__name__) from exc


class ConversionStore(GroupCommit[_Pending]):
    """Writes and reads ``ingestion.events`` / ``webhook_receipts`` / ``outbox``.

    Accepts are group-committed: webhooks that arrive while accept statements are in flight are
    written together by the next one (at most :data:`MAX_BATCH` rows, :data:`MAX_IN_FLIGHT`
    statements at once), so under load a round trip and a WAL flush serve many webhooks; alone, a
    webhook is written at once. Each caller still returns only after its own rows are committed.
    """

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout_s: float | None = None) -> None:
        super().__init__(pool, acquire_timeout_s=acquire_timeout_s, max_in_flight=MAX_IN_FLIGHT)

    async def accept(
        self, tenant_id: uuid.UUID, conversion: Conversion, receipt: Receipt
    ) -> Accepted:
        """The conversion (absorbed if already known), its outbox message when new, and the
        receipt, committed together. Returns once committed."""
        key = (tenant_id, conversion.gateway, conversion.order_id, conversion.status.value)
        row = accept_row(tenant_id, conversion, receipt)
        pending = _Pending(key, row, asyncio.get_running_loop().create_future())
        self._submit(pending)
        with _unavailable_as_port_error():
            return await pending.done

    def _take_batch(self) -> list[_Pending]:
        """Up to MAX_BATCH waiting webhooks, one per conversion key (a repeat waits for the next
        statement, which then finds the first one committed), sorted by key so that concurrent
        statements take the unique index's locks in the same order and cannot deadlock."""
        batch: dict[tuple[uuid.UUID, str, str, str], _Pending] = {}
        deferred: list[_Pending] = []
        while self._pending and len(batch) < MAX_BATCH:
            pending = self._pending.popleft()
            if pending.done.done():  # the caller went away before it was written
                continue
            if pending.key in batch:
                deferred.append(pending)
            else:
                batch[pending.key] = pending
        self._pending.extendleft(reversed(deferred))
        return [batch[key] for key in sorted(batch, key=lambda k: (str(k[0]), *k[1:]))]

    async def _write(self, batch: list[_Pending]) -> None:
        rows = await self._fetch(_ACCEPT, batch)
        if rows is None:
            return
        found = {row["n"]: Accepted(row["id"], duplicate=row["duplicate"]) for row in rows}
        for n, pending in enumerate(batch, 1):
            if pending.done.done():
                continue
            if n in found:
                pending.done.set_result(found[n])
            elif pending.attempts + 1 < _ACCEPT_ATTEMPTS:
                pending.attempts += 1
                self._pending.appendleft(pending)
            else:
                order = pending.key[2]
                pending.done.set_exception(
                    RuntimeError(f"conversion {order!r} neither inserted nor found")
                )

    async def record(self, tenant_id: uuid.UUID, receipt: Receipt) -> None:
        """A receipt without a conversion (ignored, test payload, invalid). A gateway panel's
        test payload also tells ``trackai.status`` (``webhook.<tenant>``), in the same
        transaction: the seller setting up is waiting for it."""
        args = _receipt_args(tenant_id, receipt)
        with _unavailable_as_port_error():
            await self._record(tenant_id, receipt, args)

    async def _record(self, tenant_id: uuid.UUID, receipt: Receipt, args: list[Any]) -> None:
        async with self._pool.acquire(timeout=self._acquire_timeout_s) as conn:
            if receipt.outcome != "test":
                await conn.execute(_INSERT_RECEIPT, *args)
                return
            async with conn.transaction():
                await conn.execute(_INSERT_RECEIPT, *args)
                await outbox.enqueue(
                    conn,
                    schema=SCHEMA,
                    exchange=STATUS_EXCHANGE,
                    routing_key=f"webhook.{tenant_id}",
                    message_id=uuid.uuid4().hex,
                    message_type=STATUS_UPDATE_TYPE,
                    body=webhook_status(
                        str(tenant_id), receipt.gateway, receipt.outcome, receipt.received_at
                    ),
                )

    async def get(self, tenant_id: uuid.UUID, conversion_id: uuid.UUID) -> StoredConversion | None:
        async with self._pool.acquire(timeout=self._acquire_timeout_s) as conn:
            row = await conn.fetchrow(
                _SELECT + "WHERE id = $1 AND tenant_id = $2 AND kind = 'conversion'",
                conversion_id,
                tenant_id,
            )
        return _stored(row) if row is not None else None

    async def get_many(
        self, tenant_id: uuid.UUID, conversion_ids: Sequence[uuid.UUID]
    ) -> list[StoredConversion]:
        """One primary-key read for a page of conversions (the console's events list)."""
        async with self._pool.acquire(timeout=self._acquire_timeout_s) as conn:
            rows = await conn.fetch(
                _SELECT + "WHERE id = ANY($1::uuid[]) AND tenant_id = $2 AND kind = 'conversion'",
                list(conversion_ids),
                tenant_id,
            )
        return [_stored(row) for row in rows]

    async def list(
        self,
        tenant_id: uuid.UUID,
        *,
        statuses: Sequence[CanonicalStatus],
        start: datetime | None,
        end: datetime | None,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None,
        gateway: str | None = None,
        order_id: str | None = None,
        funnel_id: uuid.UUID | None = None,
    ) -> list[StoredConversion]:
        """Newest event time first; keyset pagination on (event_time, id)."""
        conditions = ["tenant_id = $1", "kind = 'conversion'"]
        params = Params(tenant_id)
        arg = params.bind
        if statuses:
            # Also served by events_tenant_status_time_idx: status is not null on conversions.
            conditions.append(f"status = ANY({arg([s.value for s in statuses])}::text[])")
        if start is not None:
            conditions.append(f"event_time >= {arg(start)}")
        if end is not None:
            conditions.append(f"event_time < {arg(end)}")
        if after is not None:
            conditions.append(f"(event_time, id) < ({arg(after[0])}, {arg(after[1])})")
        if gateway is not None:
            conditions.append(f"gateway = {arg(gateway)}")
        if order_id is not None:
            # With the gateway, served by events_conversion_dedupe_uq (tenant, gateway, order).
            conditions.append(f"order_id = {arg(order_id)}")
        if funnel_id is not None:
            conditions.append(f"funnel_id = {arg(funnel_id)}")
        sql = (
            _SELECT
            + "WHERE "
            + " AND ".join(conditions)
            + f" ORDER BY event_time DESC, id DESC LIMIT {arg(limit)}"
        )
        async with self._pool.acquire(timeout=self._acquire_timeout_s) as conn:
            rows = await conn.fetch(sql, *params.values)
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
        conversion.renewal,
        conversion.checkout_url,
    ]


def _receipt_args(tenant_id: uuid.UUID, receipt: Receipt) -> list[Any]:
    """A receipt without a conversion (its ``conversion_id`` column is null)."""
    return [tenant_id, receipt.outcome, None, *_receipt_details(receipt)]


def _receipt_details(receipt: Receipt) -> list[Any]:
    # The body was checked by the parse step; the request's headers were not, and a receipt of
    # a refusal must be recordable whatever the request held.
    return [
        receipt.received_at,
        receipt.gateway,
        _storable(receipt.reason),
        receipt.http_status,
        _storable(receipt.order_id),
        _storable(receipt.content_type),
        receipt.body_sha256,
        receipt.body_redacted,
        {_storable(name): _storable(value) for name, value in receipt.headers.items()},
    ]


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@overload
def _storable(value: str) -> str: ...
@overload
def _storable(value: str | None) -> str | None: ...
def _storable(value: str | None) -> str | None:
    """Text PostgreSQL accepts: NUL and lone surrogates (which ``text`` and ``jsonb`` refuse)
    become U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", value) if value else value


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
        renewal=bool(row["renewal"]),
        checkout_url=row["checkout_url"],
    )
    return StoredConversion(row["id"], row["tenant_id"], row["received_at"], conversion)


def _payment_method(value: str | None) -> PaymentMethod:
    try:
        return PaymentMethod(value) if value else PaymentMethod.UNKNOWN
    except ValueError:
        return PaymentMethod.OTHER
