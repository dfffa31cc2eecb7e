"""PostgreSQL baselines with asyncpg: single-row inserts (sequential, 8 concurrent) and batches.

All four share one temporary database ``bench_<random>``, created for the run and dropped after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from bench.context import BenchContext
from bench.registry import Metric, RunOnce, benchmark
from bench.stats import percentile

Row = tuple[uuid.UUID, str, dt.datetime, str]
COLUMNS = ("tenant_id", "event_id", "occurred_at", "payload")
POOL_SIZE = 8
BATCH = 1000

rows_per_second = Metric("throughput", "rows/s")
latency_metrics = (
    Metric("p50", "ms", higher_is_better=False),
    Metric("p99", "ms", higher_is_better=False),
)


@contextlib.asynccontextmanager
async def temporary_database(server_url: str) -> AsyncIterator[str]:
    """Create ``bench_<random>`` on the server of ``server_url``; yield its name; drop it."""
    name = f"bench_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(server_url, database="postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield name
    finally:
        admin = await asyncpg.connect(server_url, database="postgres")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def bench_pool(ctx: BenchContext) -> AsyncIterator[asyncpg.Pool]:
    database = await ctx.shared(
        "postgres.database", lambda: temporary_database(ctx.settings.database_url)
    )
    pool = await asyncpg.create_pool(
        ctx.settings.database_url, database=database, min_size=POOL_SIZE, max_size=POOL_SIZE
    )
    try:
        yield pool
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def event_table(ctx: BenchContext) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    """A table shaped like a normalised conversion (uuid, 64-hex id, time, ~260 B jsonb)."""
    pool = await ctx.shared("postgres.pool", lambda: bench_pool(ctx))
    table = f"events_{secrets.token_hex(4)}"
    await pool.execute(
        f"CREATE TABLE {table} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " tenant_id uuid NOT NULL, event_id text NOT NULL,"
        " occurred_at timestamptz NOT NULL, payload jsonb NOT NULL)"
    )
    try:
        yield pool, table
    finally:
        await pool.execute(f"DROP TABLE {table}")


def make_rows(count: int) -> list[Row]:
    tenant = uuid.uuid4()
    now = dt.datetime.now(dt.UTC)
    payload = json.dumps(
        {
            "event_name": "Purchase",
            "value": 197.0,
            "currency": "BRL",
            "email_hash": "0" * 64,
            "phone_hash": "1" * 64,
            "gateway": "kiwify",
            "status": "paid",
        }
    )
    return [(tenant, secrets.token_hex(32), now, payload) for _ in range(count)]


def insert_sql(table: str) -> str:
    return f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ($1, $2, $3, $4)"


async def timed_run(
    pool: asyncpg.Pool, table: str, seconds: float, body: Callable[[float], Awaitable[int]]
) -> float:
    """Empty the table (untimed), run ``body(deadline)`` which returns the rows it inserted, check
    they all landed; return rows/s."""
    await pool.execute(f"TRUNCATE {table}")
    started = time.perf_counter()
    inserted = await body(started + seconds)
    elapsed = time.perf_counter() - started
    stored = await pool.fetchval(f"SELECT count(*) FROM {table}")
    if stored != inserted:
        raise RuntimeError(f"inserted {inserted} rows into {table}, found {stored}")
    return inserted / elapsed


async def insert_each(
    conn: Any, sql: str, rows: Sequence[Row], deadline: float, latencies: list[float]
) -> int:
    """One INSERT per row in autocommit (each row its own committed transaction) until the
    deadline, cycling over ``rows``; returns how many were inserted."""
    inserted = 0
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        await conn.execute(sql, *rows[inserted % len(rows)])
        latencies.append(time.perf_counter() - started)
        inserted += 1
    return inserted


def with_latency(throughput: float, latencies: list[float]) -> dict[str, float]:
    return {
        "throughput": throughput,
        "p50": percentile(latencies, 50) * 1000,
        "p99": percentile(latencies, 99) * 1000,
    }


def run_seconds(ctx: BenchContext) -> float:
    return ctx.seconds(1.5, 0.7)


@benchmark("baseline.postgres.insert_single", metrics=(rows_per_second, *latency_metrics))
async def insert_single(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """Sequential single-row INSERTs, one committed transaction each, one connection."""
    async with event_table(ctx) as (pool, table):
        rows = make_rows(BATCH)
        sql = insert_sql(table)

        async def once() -> dict[str, float]:
            latencies: list[float] = []

            async def body(deadline: float) -> int:
                async with pool.acquire() as conn:
                    return await insert_each(conn, sql, rows, deadline, latencies)

            return with_latency(await timed_run(pool, table, run_seconds(ctx), body), latencies)

        yield once


@benchmark("baseline.postgres.insert_pool8", metrics=(rows_per_second, *latency_metrics))
async def insert_pool8(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """Single-row INSERTs, one transaction each, 8 concurrent connections from a pool."""
    async with event_table(ctx) as (pool, table):
        rows = make_rows(BATCH)
        sql = insert_sql(table)

        async def once() -> dict[str, float]:
            latencies: list[float] = []

            async def worker(deadline: float) -> int:
                async with pool.acquire() as conn:
                    return await insert_each(conn, sql, rows, deadline, latencies)

            async def body(deadline: float) -> int:
                counts = await asyncio.gather(*(worker(deadline) for _ in range(POOL_SIZE)))
                return sum(counts)

            return with_latency(await timed_run(pool, table, run_seconds(ctx), body), latencies)

        yield once


@benchmark("baseline.postgres.executemany_1000", metrics=(rows_per_second,))
async def executemany_1000(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """executemany of 1,000-row batches, one transaction per batch, one connection."""
    async with event_table(ctx) as (pool, table):
        # Rows need not be distinct (no unique index), so one batch is inserted over and over.
        batch = make_rows(BATCH)
        sql = insert_sql(table)

        async def once() -> dict[str, float]:
            async def body(deadline: float) -> int:
                inserted = 0
                async with pool.acquire() as conn:
                    while time.perf_counter() < deadline:
                        async with conn.transaction():
                            await conn.executemany(sql, batch)
                        inserted += len(batch)
                return inserted

            return {"throughput": await timed_run(pool, table, run_seconds(ctx), body)}

        yield once


@benchmark("baseline.postgres.copy_1000", metrics=(rows_per_second,))
async def copy_1000(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """copy_records_to_table of 1,000-row batches (binary COPY), one connection."""
    async with event_table(ctx) as (pool, table):
        batch = make_rows(BATCH)

        async def once() -> dict[str, float]:
            async def body(deadline: float) -> int:
                inserted = 0
                async with pool.acquire() as conn:
                    while time.perf_counter() < deadline:
                        await conn.copy_records_to_table(table, records=batch, columns=COLUMNS)
                        inserted += len(batch)
                return inserted

            return {"throughput": await timed_run(pool, table, run_seconds(ctx), body)}

        yield once
