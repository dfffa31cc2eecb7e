"""Which failures of the ``ingest-events`` handler are poison (dead-lettered at once) and which are
left to the kit to retry: only undecodable or invalid messages and definitive registry refusals
are poison; every database or network fault is retried, and a read-only primary drops the pool's
connections first."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, cast

import asyncpg
import grpc
import pytest

from bench.traffic import conversion_event
from trackai_kit.amqp import RETRIES_HEADER, IncomingMessage, Poison, RetryLater
from trackai_matcher.entrypoints.consumer import INGEST_TYPE, IngestConsumer
from trackai_matcher.service_layer.ingest import MatchConversion, SessionNotSeenYet


@dataclass
class Message:
    body: bytes
    message_id: str
    type: str = INGEST_TYPE
    headers: dict[str, Any] = field(default_factory=dict)


class Failing:
    """The service's ``handle_conversion`` raises ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def handle_conversion(self, message_id: str, purchase: object, *, waited: int) -> None:
        self.waited = waited
        raise self.error


def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "refused")


TRANSIENT = [
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.TooManyConnectionsError("too many clients"),
    asyncpg.SerializationError("could not serialize access"),
    asyncpg.DeadlockDetectedError("deadlock detected"),
    asyncpg.InterfaceError("connection is closed"),
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError(),
    rpc_error(grpc.StatusCode.UNAVAILABLE),
    RuntimeError("a bug: retried, and dead-lettered only after the retry window"),
]
POISON = [
    ValueError("order id too long"),
    asyncpg.InvalidTextRepresentationError("invalid input syntax"),
    rpc_error(grpc.StatusCode.PERMISSION_DENIED),
    rpc_error(grpc.StatusCode.INVALID_ARGUMENT),
    rpc_error(grpc.StatusCode.FAILED_PRECONDITION),
    rpc_error(grpc.StatusCode.UNAUTHENTICATED),
]


async def handle(error: BaseException, reconnect: Any = None) -> None:
    event = conversion_event(
        "0d7a3c2e-4b9f-4e53-9f0e-0c4f3b0a1d11", "ORD-1", dt.datetime.now(dt.UTC)
    )
    consumer = IngestConsumer(cast(MatchConversion, Failing(error)), reconnect=reconnect)
    message = Message(event.SerializeToString(), event.message_id)
    await consumer(cast(IncomingMessage, message))


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
async def test_database_and_network_faults_are_retried_not_dead_lettered(
    error: BaseException,
) -> None:
    with pytest.raises(type(error)) as raised:
        await handle(error)
    assert not isinstance(raised.value, Poison)


@pytest.mark.parametrize("error", POISON, ids=lambda e: type(e).__name__)
async def test_invalid_content_and_definitive_refusals_are_poison(error: BaseException) -> None:
    with pytest.raises(Poison):
        await handle(error)


async def test_read_only_primary_drops_the_pool_connections_before_the_retry() -> None:
    dropped: list[bool] = []

    async def reconnect() -> None:
        dropped.append(True)

    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        await handle(asyncpg.ReadOnlySQLTransactionError("read-only transaction"), reconnect)
    assert dropped == [True]


async def test_a_sale_waiting_for_its_session_is_deferred_with_its_retry_count() -> None:
    """The service is told how often the message was tried again, and its wait for a session
    becomes the kit's RetryLater (retried through the delay queues, not an error, not poison)."""
    event = conversion_event(
        "0d7a3c2e-4b9f-4e53-9f0e-0c4f3b0a1d11", "ORD-1", dt.datetime.now(dt.UTC)
    )
    service = Failing(SessionNotSeenYet("sale ORD-1 names a session not stored yet"))
    consumer = IngestConsumer(cast(MatchConversion, service))
    message = Message(event.SerializeToString(), event.message_id, headers={RETRIES_HEADER: 1})
    with pytest.raises(RetryLater):
        await consumer(cast(IncomingMessage, message))
    assert service.waited == 1
