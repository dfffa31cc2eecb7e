"""What the webhook and collect paths answer 503 for (the gateway or the beacon retries): the
database away, stopping or starting, or a connection it broke mid-statement. Seen in CI: a
PostgreSQL restart under load made asyncpg raise ``InternalClientError`` ("cannot switch to
state 11; another operation is in progress"), which was answered 500 instead of 503."""

from __future__ import annotations

import asyncpg
import pytest

from trackai_ingestion.adapters.repository import _unavailable_as_port_error
from trackai_ingestion.service_layer.ports import StorageUnavailable

TROUBLE = [
    asyncpg.exceptions.InternalClientError("cannot switch to state 11"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.CannotConnectNowError("the database system is shutting down"),
    asyncpg.InterfaceError("connection is closed"),
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError(),
]


@pytest.mark.parametrize("exc", TROUBLE, ids=[type(e).__name__ for e in TROUBLE])
def test_connection_trouble_is_storage_unavailable(exc: Exception) -> None:
    with pytest.raises(StorageUnavailable, match=type(exc).__name__), _unavailable_as_port_error():
        raise exc


def test_a_statement_the_database_refuses_is_not_hidden_as_unavailable() -> None:
    with pytest.raises(asyncpg.UniqueViolationError), _unavailable_as_port_error():
        raise asyncpg.UniqueViolationError("duplicate key")
