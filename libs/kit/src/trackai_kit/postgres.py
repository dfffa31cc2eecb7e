"""asyncpg connection pool bound to one service schema, with JSON/JSONB codecs, plus a ping.

Services keep their tables in their own schema; ``search_path`` resolves unqualified names there.
"""

from __future__ import annotations

import asyncio
import json
import re

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from trackai_kit.settings import PostgresSettings

#: A connection, whether opened directly or borrowed from a pool (``async with pool.acquire()``).
Connection = asyncpg.Connection | PoolConnectionProxy

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
PING_TIMEOUT_S = 2.0


def check_identifier(name: str) -> str:
    """Return ``name`` if it is a safe lower-case SQL identifier (we interpolate schema names)."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a valid schema/table identifier: {name!r}")
    return name


#: The database is away, stopping or starting, or the connection broke mid-statement: what a
#: caller answers with "try again" (503, a redelivery) rather than as a bug. asyncpg raises
#: ``InternalClientError`` ("cannot switch to state 11; another operation is in progress") on a
#: connection PostgreSQL killed under load; it is neither a PostgresError nor an InterfaceError.
CONNECTION_TROUBLE: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    # SQLSTATE class 57 (AdminShutdown, CannotConnectNow): not a connection error to asyncpg.
    asyncpg.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)
#: :data:`CONNECTION_TROUBLE` or any error PostgreSQL answered: what a writer that can simply try
#: again later (the outbox relay, a browser hit) survives.
DATABASE_TROUBLE: tuple[type[Exception], ...] = (*CONNECTION_TROUBLE, asyncpg.PostgresError)


class Params:
    """The values of a statement written with only the filters given: ``bind`` keeps a value
    and answers its placeholder (``$n``). A statement whose optional filters are written as
    ``($n IS NULL OR ...)`` instead gets a generic plan (asyncpg caches statements) that
    misjudges every filter left unset."""

    def __init__(self, *values: object) -> None:
        self.values: list[object] = list(values)

    def bind(self, value: object) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def asyncpg_dsn(url: str) -> str:
    """Accept SQLAlchemy-style URLs (``postgresql+asyncpg://``) as well as plain libpq ones."""
    return re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", url)


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _no_reset(_: asyncpg.Connection) -> None:
    """Release a connection without asyncpg's RESET ALL / UNLISTEN / unlock round trip."""


async def create_pool(
    settings: PostgresSettings, *, schema: str | None = None, reset_on_release: bool = True
) -> asyncpg.Pool:
    """Open a pool whose connections resolve unqualified names in ``schema``, then ``public``.

    ``reset_on_release=False`` skips the reset query on every release: only for callers that
    never leave session state (SET, LISTEN, session advisory locks) on a pooled connection.
    """
    server_settings: dict[str, str] = {"application_name": schema or "trackai"}
    if schema is not None:
        server_settings["search_path"] = f"{check_identifier(schema)},public"
    pool = await asyncpg.create_pool(
        asyncpg_dsn(settings.url),
        min_size=settings.pool_min,
        max_size=settings.pool_max,
        command_timeout=settings.command_timeout_s,
        server_settings=server_settings,
        init=_init_connection,
        reset=None if reset_on_release else _no_reset,
    )
    if pool is None:  # asyncpg's stubs allow it; a successful create_pool never returns None
        raise RuntimeError("asyncpg.create_pool returned no pool")
    return pool


async def ping(pool: asyncpg.Pool, timeout_s: float = PING_TIMEOUT_S) -> None:
    """Raise unless the database answers ``SELECT 1`` within ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
