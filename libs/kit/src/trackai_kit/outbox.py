"""Transactional outbox: write the message in the business transaction, publish it afterwards.

:func:`enqueue` inserts into ``<schema>.outbox`` inside the caller's transaction (or
:func:`enqueue_sql` / :func:`enqueue_from_sql` fold that insert into the caller's own statement);
:class:`OutboxRelay` publishes committed rows with publisher confirms and marks them published in
the transaction that locked them, so a crash yields at most a re-publish with the same message id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Observation

from trackai_kit.amqp import AmqpClient
from trackai_kit.logging import get_logger
from trackai_kit.postgres import DATABASE_TROUBLE, Connection, check_identifier
from trackai_kit.telemetry import exported_span, get_meter, inject_headers

log = get_logger(__name__)
tracer = trace.get_tracer(__name__)

#: A relay round that meets ``DATABASE_TROUBLE`` (trackai_kit.postgres) is retried after a
#: back-off of at most this long: asyncpg's client-side errors on a broken connection are among
#: them, and used to crash the relay, and with it the serve process.
MAX_BACKOFF_S = 30.0
#: Failed publishes of one message after which the relay reports it as an error (Sentry), once.
STUCK_ATTEMPTS = 5
#: Header naming the tenant a message is about (opaque id; for the relay's error reports).
TENANT_HEADER = "x-trackai-tenant"
_LAST_ERROR_MAX = 500
#: How often a running relay measures its backlog (one indexed query on the pending rows).
STATS_INTERVAL_S = 10.0

#: Running relays, observed by the backlog gauges below (label ``schema``: one per service).
_relays: weakref.WeakSet[OutboxRelay] = weakref.WeakSet()


def _observe(field: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(_: CallbackOptions) -> Iterable[Observation]:
        seen: dict[str, float] = {}
        for relay in list(_relays):
            stats = relay.stats
            if stats is not None:
                seen[relay.schema] = getattr(stats, field)
        return [Observation(value, {"schema": schema}) for schema, value in seen.items()]

    return observe


_meter = get_meter("trackai.outbox")
_PUBLISHED = _meter.create_counter(
    "trackai.outbox.messages",
    unit="{message}",
    description="Outbox rows relayed, by schema and outcome (published, failed)",
)
_meter.create_observable_gauge(
    "trackai.outbox.backlog",
    callbacks=[_observe("backlog")],
    unit="{message}",
    description="Outbox rows not yet published, by schema",
)
_meter.create_observable_gauge(
    "trackai.outbox.oldest_age",
    callbacks=[_observe("oldest_age_s")],
    unit="s",
    description="Age of the oldest unpublished outbox row (0 when none), by schema",
)


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel signalled on every insert into ``<schema>.outbox``."""
    return f"{check_identifier(schema)}_outbox"


def outbox_ddl(schema: str) -> str:
    """DDL creating ``<schema>.outbox``, its pending-rows index and its NOTIFY trigger.

    Never change what this returns for an applied revision: outbox changes go in a new revision.
    """
    s = check_identifier(schema)
    return f"""
CREATE TABLE {s}.outbox (
    id bigserial PRIMARY KEY,
    message_id text NOT NULL UNIQUE,
    exchange text NOT NULL DEFAULT '',
    routing_key text NOT NULL,
    message_type text NOT NULL,
    body bytea NOT NULL,
    headers jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    last_error text
);
CREATE INDEX outbox_unpublished_idx ON {s}.outbox (id) WHERE published_at IS NULL;
{outbox_notify_ddl(schema)}"""


def outbox_notify_ddl(schema: str) -> str:
    """The trigger that wakes the relay at once after each committing insert.

    Every transaction that NOTIFYs takes a cluster-wide lock at commit, which serialises
    commits; a high-rate writer (ingestion) drops the trigger and lets its relay poll briefly.
    """
    s = check_identifier(schema)
    return f"""CREATE FUNCTION {s}.outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{notify_channel(schema)}', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON {s}.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.outbox_notify();
"""


def outbox_notify_drop_ddl(schema: str) -> str:
    """DDL undoing :func:`outbox_notify_ddl`."""
    s = check_identifier(schema)
    return f"""
DROP TRIGGER IF EXISTS outbox_notify ON {s}.outbox;
DROP FUNCTION IF EXISTS {s}.outbox_notify();
"""


def outbox_drop_ddl(schema: str) -> str:
    """DDL undoing :func:`outbox_ddl`."""
    s = check_identifier(schema)
    return f"""{outbox_notify_drop_ddl(schema)}DROP TABLE IF EXISTS {s}.outbox;
"""


#: The outbox columns a message fills, in the order of :func:`enqueue_params`.
ENQUEUE_COLUMNS = ("message_id", "exchange", "routing_key", "message_type", "body", "headers")


def enqueue_sql(schema: str, *, first_param: int = 1) -> str:
    """The ``INSERT`` :func:`enqueue` runs, for callers that fold it into their own statement.

    Its parameters are numbered from ``first_param`` and take :func:`enqueue_params` in order.
    """
    params = [f"${first_param + i}" for i in range(len(ENQUEUE_COLUMNS))]
    params[-1] += "::jsonb"
    return _insert(schema, f"VALUES ({', '.join(params)})")


def enqueue_from_sql(schema: str, relation: str) -> str:
    """An ``INSERT`` enqueueing one message per row of ``relation`` (a CTE of the caller's
    statement with the :data:`ENQUEUE_COLUMNS`), e.g. only the rows a data-modifying CTE just
    inserted: messages and business rows written by one statement, in one round trip.
    """
    columns = ", ".join(ENQUEUE_COLUMNS)
    return _insert(schema, f"SELECT {columns} FROM {check_identifier(relation)}")  # noqa: S608


def _insert(schema: str, source: str) -> str:
    # Identifiers are validated; values are always bind parameters or the caller's columns.
    return (
        f"INSERT INTO {check_identifier(schema)}.outbox ({', '.join(ENQUEUE_COLUMNS)}) "
        f"{source} ON CONFLICT (message_id) DO NOTHING"
    )


def enqueue_params(
    *,
    routing_key: str,
    message_id: str,
    message_type: str,
    body: bytes,
    exchange: str = "",
    headers: dict[str, Any] | None = None,
) -> list[Any]:
    """The parameters of :func:`enqueue_sql`, with the current trace context in the headers."""
    stored_headers = dict(headers or {})
    inject_headers(stored_headers)
    return [message_id, exchange, routing_key, message_type, body, stored_headers]


async def enqueue(
    conn: Connection,
    *,
    schema: str,
    routing_key: str,
    message_id: str,
    message_type: str,
    body: bytes,
    exchange: str = "",
    headers: dict[str, Any] | None = None,
) -> bool:
    """Add a message to the outbox in the caller's transaction; False if the id already exists."""
    status = await conn.execute(
        enqueue_sql(schema),
        *enqueue_params(
            routing_key=routing_key,
            message_id=message_id,
            message_type=message_type,
            body=body,
            exchange=exchange,
            headers=headers,
        ),
    )
    return bool(status == "INSERT 0 1")


@dataclass(frozen=True)
class _Row:
    id: int
    message_id: str
    exchange: str
    routing_key: str
    message_type: str
    body: bytes
    headers: dict[str, Any]


@dataclass(frozen=True)
class BacklogStats:
    """Pending rows of one outbox when last measured."""

    backlog: int
    oldest_age_s: float


@dataclass(frozen=True)
class RelayResult:
    """Outcome of one relay batch."""

    published: int
    failed: int


class OutboxRelay:
    """Publishes committed outbox rows of one schema; several relays may run side by side."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        amqp: AmqpClient,
        *,
        schema: str,
        batch_size: int = 200,
        poll_interval_s: float = 1.0,
    ) -> None:
        self._pool = pool
        self._amqp = amqp
        self._schema = check_identifier(schema)
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        #: Last backlog measurement (None until the running relay took one).
        self.stats: BacklogStats | None = None
        self._stats_due = 0.0
        _relays.add(self)

    @property
    def schema(self) -> str:
        return self._schema

    async def measure_backlog(self) -> BacklogStats:
        """Count the pending rows and the age of the oldest (kept in :attr:`stats`)."""
        s = self._schema
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT count(*) AS backlog, "  # noqa: S608
                f"coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS age "
                f"FROM {s}.outbox WHERE published_at IS NULL"
            )
        assert row is not None
        self.stats = BacklogStats(int(row["backlog"]), float(row["age"]))
        return self.stats

    async def relay_once(self) -> int:
        """Publish one batch; returns how many rows were published (broker errors do not raise)."""
        return (await self.relay_batch()).published

    async def relay_batch(self) -> RelayResult:
        """Claim up to ``batch_size`` pending rows, publish them, record the outcome, commit."""
        s = self._schema
        async with self._pool.acquire() as conn, conn.transaction():
            records = await conn.fetch(
                f"SELECT id, message_id, exchange, routing_key, message_type, body, headers "  # noqa: S608
                f"FROM {s}.outbox WHERE published_at IS NULL ORDER BY id "
                f"LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch_size,
            )
            if not records:
                return RelayResult(0, 0)
            rows = [_Row(**dict(record)) for record in records]
            outcomes = await asyncio.gather(*(self._publish(row) for row in rows))
            published = [row.id for row, error in zip(rows, outcomes, strict=True) if error is None]
            failed = [
                (row.id, error[:_LAST_ERROR_MAX])
                for row, error in zip(rows, outcomes, strict=True)
                if error is not None
            ]
            if published:
                await conn.execute(
                    f"UPDATE {s}.outbox SET published_at = now(), attempts = attempts + 1, "  # noqa: S608
                    f"last_error = NULL WHERE id = ANY($1::bigint[])",
                    published,
                )
            stuck: list[_Row] = []
            if failed:
                attempts = await conn.fetch(
                    f"UPDATE {s}.outbox o SET attempts = o.attempts + 1, last_error = f.error "  # noqa: S608
                    f"FROM unnest($1::bigint[], $2::text[]) AS f(id, error) WHERE o.id = f.id "
                    f"RETURNING o.id, o.attempts",
                    [row_id for row_id, _ in failed],
                    [error for _, error in failed],
                )
                reached = {r["id"] for r in attempts if r["attempts"] == STUCK_ATTEMPTS}
                stuck = [row for row in rows if row.id in reached]
        if published:
            _PUBLISHED.add(len(published), {"schema": s, "outcome": "published"})
        if failed:
            _PUBLISHED.add(len(failed), {"schema": s, "outcome": "failed"})
            log.warning(
                "outbox publish failed",
                schema=s,
                failed=len(failed),
                published=len(published),
                error=failed[0][1],
            )
        errors = dict(failed)
        for row in stuck:
            # Once per message, when its failures stop looking like a broker blip: the message
            # is kept and retried, but no consumer sees it until someone fixes the cause.
            log.error(
                "outbox message keeps failing to publish",
                schema=s,
                message_id=row.message_id,
                tenant_id=row.headers.get(TENANT_HEADER),
                attempts=STUCK_ATTEMPTS,
                error=errors[row.id],
            )
        return RelayResult(len(published), len(failed))

    async def _publish(self, row: _Row) -> str | None:
        headers = dict(row.headers)
        # Continue the trace of the transaction that enqueued the message. Unexported, the span
        # would only repeat the traceparent the stored headers already carry to the consumer.
        with exported_span(
            tracer,
            "outbox relay",
            parent_headers=headers,
            attributes={"trackai.outbox.id": row.id},
        ):
            try:
                await self._amqp.publish(
                    row.routing_key,
                    row.body,
                    exchange=row.exchange,
                    message_id=row.message_id,
                    message_type=row.message_type,
                    headers=headers,
                )
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"
        return None

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set: woken by NOTIFY, polling as fallback, with back-off."""
        wake = asyncio.Event()
        backoff = 0.0
        listener: PoolConnectionProxy | None = None

        def on_notify(*_: object) -> None:
            wake.set()

        try:
            while not stop.is_set():
                if listener is None or _lost(listener):
                    # A connection lost under LISTEN (failover, network cut) still counts as
                    # acquired: hand it back, or each loss leaks one slot of the pool.
                    await self._release_listener(listener, on_notify)
                    listener = await self._listen(on_notify)
                wake.clear()
                await self._maybe_measure()
                try:
                    result = await self.relay_batch()
                except DATABASE_TROUBLE as exc:
                    log.warning("outbox relay database error", schema=self._schema, error=str(exc))
                    result = RelayResult(0, 1)
                    await self._release_listener(listener, on_notify)
                    listener = None
                if result.failed and not result.published:
                    backoff = min(MAX_BACKOFF_S, max(self._poll_interval_s, backoff * 2 or 0.5))
                    await _wait_any(stop, None, backoff)
                    continue
                backoff = 0.0
                if result.published >= self._batch_size:
                    continue  # more rows are probably waiting
                await _wait_any(stop, wake, self._poll_interval_s)
        finally:
            await self._release_listener(listener, on_notify)

    async def _maybe_measure(self) -> None:
        if time.monotonic() < self._stats_due:
            return
        self._stats_due = time.monotonic() + STATS_INTERVAL_S
        try:
            await self.measure_backlog()
        except DATABASE_TROUBLE as exc:
            # The relay's own round reports the database trouble; the gauge keeps its last value.
            log.debug("outbox backlog not measured", schema=self._schema, error=str(exc))

    async def _listen(self, callback: Callable[..., None]) -> PoolConnectionProxy | None:
        try:
            conn: PoolConnectionProxy = await self._pool.acquire()
        except DATABASE_TROUBLE as exc:
            log.warning("outbox relay cannot LISTEN; polling only", error=str(exc))
            return None
        try:
            await conn.add_listener(notify_channel(self._schema), callback)
        except BaseException:
            await self._pool.release(conn)
            raise
        return conn

    async def _release_listener(
        self, conn: PoolConnectionProxy | None, callback: Callable[..., None]
    ) -> None:
        if conn is None:
            return
        # Best effort: a broken connection is discarded by the pool anyway.
        with contextlib.suppress(Exception):
            await conn.remove_listener(notify_channel(self._schema), callback)
        with contextlib.suppress(Exception):
            await self._pool.release(conn)


def _lost(conn: PoolConnectionProxy) -> bool:
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True  # the pool already took it back after the connection broke


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event | None, timeout_s: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
