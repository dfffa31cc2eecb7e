"""RabbitMQ topology as data: every queue, dead-letter queue, delay queue and exchange in one place.

Queues are durable quorum queues that dead-letter at-least-once to ``<name>.dlq``; retries wait
in TTL delay queues (``<name>.retry.<ms>``) that dead-letter back to their work queue. Every queue
carries an explicit ``x-delivery-limit``: RabbitMQ 4 otherwise applies 20 to every quorum queue.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

INGEST_EVENTS = "ingest-events"
CAPI_DISPATCH = "capi-dispatch"
STATUS_EXCHANGE = "trackai.status"
DLQ_SUFFIX = ".dlq"
#: Retry delays of the dispatcher, in milliseconds (1, 2, 4, 8, 16 s).
CAPI_RETRY_DELAYS_MS = (1000, 2000, 4000, 8000, 16000)
#: Back-off of the matcher's ``ingest-events`` retries (1 s, 5 s, 30 s, 2 min, then every 10 min).
INGEST_RETRY_DELAYS_MS = (1000, 5000, 30000, 120000, 600000)
#: Redeliveries a work queue allows before dead-lettering. Consumers retry through the delay
#: queues with an ack, so only crashes and shutdown hand-backs count: reaching this means a
#: message kills its consumer (or channel) every time it is delivered.
DELIVERY_LIMIT = 50
#: A DLQ must never drop what it holds (listing it returns messages, which counts as a delivery);
#: RabbitMQ has no portable "unlimited" (4.x reads -1 so, 3.x does not), hence a very large one.
DLQ_DELIVERY_LIMIT = 1_000_000


def dlq_name(queue: str) -> str:
    """Name of the dead-letter queue that belongs to ``queue``."""
    return f"{queue}{DLQ_SUFFIX}"


def retry_queue_name(queue: str, delay_ms: int) -> str:
    """The delay queue that holds messages ``delay_ms`` before returning them to ``queue``."""
    return f"{queue}.retry.{delay_ms}"


@dataclass(frozen=True)
class QueueSpec:
    """A durable quorum queue.

    ``dead_letter`` gives it a ``<name>.dlq``; ``dead_letter_to`` instead sends expired or rejected
    messages back to another queue through the default exchange (delay queues).
    """

    name: str
    dead_letter: bool = True
    message_ttl_ms: int | None = None
    dead_letter_to: str | None = None
    bindings: tuple[tuple[str, str], ...] = ()
    delivery_limit: int = DELIVERY_LIMIT

    def arguments(self) -> dict[str, Any]:
        """The ``x-`` arguments RabbitMQ receives when the queue is declared."""
        args: dict[str, Any] = {"x-queue-type": "quorum", "x-delivery-limit": self.delivery_limit}
        target = self.dead_letter_to or (dlq_name(self.name) if self.dead_letter else None)
        if target is not None:
            args["x-dead-letter-exchange"] = ""
            args["x-dead-letter-routing-key"] = target
            # At-least-once dead-lettering keeps a message in the source queue until the target
            # confirms it; RabbitMQ requires reject-publish overflow for that strategy.
            args["x-dead-letter-strategy"] = "at-least-once"
            args["x-overflow"] = "reject-publish"
        if self.message_ttl_ms is not None:
            args["x-message-ttl"] = self.message_ttl_ms
        return args

    def dlq(self) -> QueueSpec | None:
        """The dead-letter queue this queue needs, if it dead-letters to its own DLQ."""
        if self.dead_letter_to is None and self.dead_letter:
            return QueueSpec(
                name=dlq_name(self.name), dead_letter=False, delivery_limit=DLQ_DELIVERY_LIMIT
            )
        return None


@dataclass(frozen=True)
class ExchangeSpec:
    """A durable exchange."""

    name: str
    type: str = "topic"


@dataclass(frozen=True)
class Topology:
    """Exchanges and queues one process declares before it publishes or consumes."""

    exchanges: tuple[ExchangeSpec, ...] = ()
    queues: tuple[QueueSpec, ...] = ()

    def prefixed(self, prefix: str) -> Topology:
        """The same topology with every queue and exchange name prefixed (isolates tests)."""
        if not prefix:
            return self

        def exchange_name(name: str) -> str:
            return f"{prefix}{name}" if name else name

        return Topology(
            exchanges=tuple(replace(e, name=f"{prefix}{e.name}") for e in self.exchanges),
            queues=tuple(
                replace(
                    q,
                    name=f"{prefix}{q.name}",
                    dead_letter_to=f"{prefix}{q.dead_letter_to}" if q.dead_letter_to else None,
                    bindings=tuple((exchange_name(ex), key) for ex, key in q.bindings),
                )
                for q in self.queues
            ),
        )

    def all_queues(self) -> tuple[QueueSpec, ...]:
        """Every queue to declare, DLQs first so dead-lettering always has a target."""
        dlqs = tuple(dlq for q in self.queues if (dlq := q.dlq()) is not None)
        return dlqs + self.queues

    def merge(self, other: Topology) -> Topology:
        """Union of two topologies (a process that both consumes and publishes declares both)."""
        exchanges = self.exchanges + tuple(e for e in other.exchanges if e not in self.exchanges)
        queues = self.queues + tuple(q for q in other.queues if q not in self.queues)
        return Topology(exchanges=exchanges, queues=queues)


def ingestion_topology() -> Topology:
    """Ingestion publishes normalised conversions to ``ingest-events``, and their "received"
    statuses (and webhook-test notices) to the status exchange."""
    return Topology(queues=(QueueSpec(INGEST_EVENTS),)).merge(status_topology())


def delay_queues(queue: str, delays_ms: tuple[int, ...]) -> Topology:
    """One TTL queue per delay, each dead-lettering back to ``queue`` when its messages expire."""
    return Topology(
        queues=tuple(
            QueueSpec(retry_queue_name(queue, delay), message_ttl_ms=delay, dead_letter_to=queue)
            for delay in delays_ms
        )
    )


def matcher_topology() -> Topology:
    """The matcher consumes ``ingest-events`` (retrying through its delay queues) and publishes
    to ``capi-dispatch``, and each conversion's status to the status exchange."""
    return (
        Topology(queues=(QueueSpec(INGEST_EVENTS), QueueSpec(CAPI_DISPATCH)))
        .merge(delay_queues(INGEST_EVENTS, INGEST_RETRY_DELAYS_MS))
        .merge(status_topology())
    )


def dispatcher_topology() -> Topology:
    """The dispatcher consumes ``capi-dispatch`` and parks retries in TTL delay queues."""
    return (
        Topology(queues=(QueueSpec(CAPI_DISPATCH),))
        .merge(delay_queues(CAPI_DISPATCH, CAPI_RETRY_DELAYS_MS))
        .merge(status_topology())
    )


def status_topology() -> Topology:
    """Live status updates: a topic exchange; each reader binds its own queue."""
    return Topology(exchanges=(ExchangeSpec(STATUS_EXCHANGE, "topic"),))
