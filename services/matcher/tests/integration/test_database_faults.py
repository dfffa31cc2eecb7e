"""A purchase in flight while PostgreSQL restarts, fails over or drops the connection still ends in
``capi-dispatch``, with nothing in ``ingest-events.dlq``: the matcher retries through the delay
queues instead of dead-lettering.

Each fault is made without touching the shared server: ``pg_terminate_backend`` on the matcher's
backend while it waits on a lock (AdminShutdownError), a TCP proxy cut between the matcher and
PostgreSQL (ConnectionDoesNotExistError), and the test database turned read-only as a demoted
primary is (ReadOnlySQLTransactionError).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bench.traffic import conversion_event
from trackai.ingestion.v1 import events_pb2 as ingest
from trackai_kit.postgres import create_pool
from trackai_kit.settings import PostgresSettings
from trackai_kit.topology import INGEST_EVENTS
from trackai_testing.faults import TcpProxy

from .stack import (
    NOW,
    POLICY,
    Stack,
    purchase_reaches_dispatch,
    running,
    sale_with_a_click,
    wait_until,
)

pytestmark = pytest.mark.integration


async def blocked_backends(admin: asyncpg.Connection) -> list[int]:
    """The matcher's backends waiting on the test's table lock."""
    rows = await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    return [r["pid"] for r in rows]


async def fault_mid_purchase(
    stack: Stack, admin: asyncpg.Connection, order: ingest.IngestEvent, fault: Callable[[], Any]
) -> None:
    """Hold a lock the purchase needs, publish it, inject ``fault`` while it waits, release."""
    async with admin.transaction():
        await admin.execute("LOCK TABLE matcher.inbox IN ACCESS EXCLUSIVE MODE")
        await stack.publish(order)

        async def waiting() -> bool:
            return bool(await blocked_backends(admin))

        await wait_until(waiting)
        result = fault()
        if asyncio.iscoroutine(result):
            await result


async def test_backend_terminated_mid_purchase_is_retried_not_dead_lettered(
    matcher: Any, make_service: Any, amqp_url: str, amqp_prefix: str
) -> None:
    tenant = matcher.registry.add_tenant()
    pool = await create_pool(
        PostgresSettings(url=matcher.database_url, pool_max=2), schema="matcher"
    )
    admin = await asyncpg.connect(matcher.database_url)
    try:
        async with running(make_service, amqp_url, amqp_prefix, pool) as stack:
            await sale_with_a_click(stack, tenant, "sess-fault-1", "ORD-F1")
            order = conversion_event(tenant, "ORD-F1", NOW, sck="sess-fault-1")

            async def terminate() -> None:
                # What a PostgreSQL restart does to every session: AdminShutdownError (57P01).
                for pid in await blocked_backends(admin):
                    await admin.execute("SELECT pg_terminate_backend($1)", pid)

            await fault_mid_purchase(stack, admin, order, terminate)
            await purchase_reaches_dispatch(stack)
    finally:
        await admin.close()
        await pool.close()


async def test_connection_cut_mid_purchase_is_retried_not_dead_lettered(
    matcher: Any, make_service: Any, amqp_url: str, amqp_prefix: str
) -> None:
    tenant = matcher.registry.add_tenant()
    url = urlsplit(matcher.database_url)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 5432)
    port = await proxy.start()
    netloc = f"{url.username}@127.0.0.1:{port}" if url.username else f"127.0.0.1:{port}"
    proxied = urlunsplit(url._replace(netloc=netloc))
    pool = await create_pool(PostgresSettings(url=proxied, pool_max=2), schema="matcher")
    admin = await asyncpg.connect(matcher.database_url)
    try:
        async with running(make_service, amqp_url, amqp_prefix, pool) as stack:
            await sale_with_a_click(stack, tenant, "sess-fault-2", "ORD-F2")
            order = conversion_event(tenant, "ORD-F2", NOW, sck="sess-fault-2")
            # A failover or a network fault: the TCP connections vanish mid-query
            # (ConnectionDoesNotExistError); the matcher's pool reconnects through the proxy.
            await fault_mid_purchase(stack, admin, order, proxy.cut)
            await purchase_reaches_dispatch(stack)
    finally:
        await admin.close()
        await pool.close()
        await proxy.close()


async def test_read_only_primary_is_retried_on_fresh_connections(
    matcher: Any, make_service: Any, amqp_url: str, amqp_prefix: str
) -> None:
    tenant = matcher.registry.add_tenant()
    admin = await asyncpg.connect(matcher.database_url)
    database = await admin.fetchval("SELECT current_database()")
    pool = await create_pool(
        PostgresSettings(url=matcher.database_url, pool_max=2), schema="matcher"
    )
    try:
        async with running(make_service, amqp_url, amqp_prefix, pool) as stack:
            await sale_with_a_click(stack, tenant, "sess-fault-3", "ORD-F3")
            # A demoted primary: sessions opened now refuse writes (ReadOnlySQLTransactionError).
            await admin.execute(
                f'ALTER DATABASE "{database}" SET default_transaction_read_only = on'
            )
            await pool.expire_connections()
            await stack.publish(conversion_event(tenant, "ORD-F3", NOW, sck="sess-fault-3"))

            async def retrying() -> bool:
                # While the database stays read-only the purchase keeps failing and waits in
                # the delay queues, which is where it is found.
                waiting = [
                    await stack.depth(f"{INGEST_EVENTS}.retry.{ms}") for ms in POLICY.delays_ms
                ]
                return sum(waiting) == 1

            await wait_until(retrying)
            # The new primary is up: only fresh connections reach it (the pool must drop the
            # read-only ones, as asyncpg keeps them otherwise).
            await admin.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
            await purchase_reaches_dispatch(stack)
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
        await admin.close()
        await pool.close()
