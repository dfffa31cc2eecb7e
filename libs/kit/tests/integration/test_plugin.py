"""The shared pytest plugin: per-test databases and queue prefixes that clean up after themselves."""

from __future__ import annotations

import uuid

import aio_pika
import asyncpg
import pytest

from trackai_kit.amqp import AmqpClient, declared_names
from trackai_kit.settings import AmqpSettings
from trackai_kit.topology import ExchangeSpec, QueueSpec, Topology
from trackai_testing.plugin import _delete_prefixed, database_url_for, run_sync

pytestmark = pytest.mark.integration


async def _database_exists(admin_url: str, name: str) -> bool:
    conn = await asyncpg.connect(admin_url)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def test_database_url_is_a_migrated_clone(database_url: str, postgres_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        schemas = {r["nspname"] for r in await conn.fetch("SELECT nspname FROM pg_namespace")}
        # the clone is writable and private to this test
        await conn.execute("CREATE TABLE public.scratch (x int)")
    finally:
        await conn.close()
    assert {"provisioner", "ingestion", "matcher", "dispatcher"} <= schemas


async def test_empty_database_is_empty_and_dropped_afterwards(
    empty_database_url: str, postgres_url: str
) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        )
    finally:
        await conn.close()
    assert tables == 0
    name = empty_database_url.rsplit("/", 1)[1]
    assert await _database_exists(database_url_for(postgres_url, "postgres"), name)


def test_database_url_for_swaps_only_the_database() -> None:
    assert (
        database_url_for("postgresql+asyncpg://u:p@h:5433/postgres?sslmode=disable", "x")
        == "postgresql://u:p@h:5433/x?sslmode=disable"
    )


async def test_prefixed_names_are_deleted(amqp_url: str) -> None:
    prefix = f"tplug{uuid.uuid4().hex[:8]}."
    topo = Topology(
        exchanges=(ExchangeSpec("custom.x"),),
        queues=(QueueSpec("custom-q", bindings=(("custom.x", "#"),)),),
    )
    async with AmqpClient(AmqpSettings(url=amqp_url, prefix=prefix)) as client:
        await client.declare(topo)
    queues, exchanges = declared_names(prefix)
    assert queues == {f"{prefix}custom-q", f"{prefix}custom-q.dlq"}
    assert exchanges == {f"{prefix}custom.x"}
    # the fixture's teardown runs its cleanup on a private loop, as it does here
    run_sync(_delete_prefixed(amqp_url, prefix))
    assert declared_names(prefix) == (set(), set())
    connection = await aio_pika.connect(amqp_url)
    try:
        for name in (f"{prefix}custom-q", f"{prefix}custom-q.dlq"):
            channel = await connection.channel()
            with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
                await channel.declare_queue(name, passive=True)
        channel = await connection.channel()
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await channel.declare_exchange(f"{prefix}custom.x", passive=True)
    finally:
        await connection.close()
