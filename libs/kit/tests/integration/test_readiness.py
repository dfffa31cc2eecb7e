"""/ready against a real PostgreSQL and RabbitMQ: 200 when reachable, 503 when not."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from trackai_kit.amqp import AmqpClient
from trackai_kit.http import create_app
from trackai_kit.postgres import create_pool, ping
from trackai_kit.settings import AmqpSettings, PostgresSettings

pytestmark = pytest.mark.integration
CLOSED_PORT_DB = "postgresql://postgres@127.0.0.1:9/postgres"
CLOSED_PORT_AMQP = "amqp://guest:guest@127.0.0.1:9/"


async def _ready(app: FastAPI) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        return await client.get("/ready")


async def test_ready_when_database_and_broker_are_reachable(
    postgres_url: str, amqp_url: str
) -> None:
    pool = await create_pool(PostgresSettings(url=postgres_url, pool_max=2))
    try:
        async with AmqpClient(AmqpSettings(url=amqp_url)) as amqp:
            app = create_app(
                "svc", readiness=[("postgres", lambda: ping(pool)), ("rabbitmq", amqp.ping)]
            )
            response = await _ready(app)
    finally:
        await pool.close()
    assert response.status_code == 200
    assert response.json()["checks"] == {"postgres": "ok", "rabbitmq": "ok"}


async def test_not_ready_when_database_and_broker_are_unreachable() -> None:
    # min 0: the pool opens without connecting, as it would after the database went away.
    pool = await create_pool(PostgresSettings(url=CLOSED_PORT_DB, pool_min=0, pool_max=1))
    amqp = AmqpClient(AmqpSettings(url=CLOSED_PORT_AMQP, connect_timeout_s=1))
    try:
        app = create_app(
            "svc",
            readiness=[("postgres", lambda: ping(pool)), ("rabbitmq", amqp.ping)],
            expose_details=True,
        )
        response = await _ready(app)
    finally:
        await pool.close()
        await amqp.close()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert set(body["checks"]) == {"postgres", "rabbitmq"}
    assert all(value != "ok" and ": " in value for value in body["checks"].values())


async def test_pool_uses_schema_search_path_and_jsonb_codec(empty_database_url: str) -> None:
    pool = await create_pool(PostgresSettings(url=empty_database_url), schema="kitpg")
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE SCHEMA kitpg; CREATE TABLE kitpg.docs (body jsonb)")
            await conn.execute("INSERT INTO docs VALUES ($1)", {"a": [1, "x"]})
            assert await conn.fetchval("SELECT body FROM docs") == {"a": [1, "x"]}
            assert await conn.fetchval("SHOW search_path") == "kitpg,public"
        await ping(pool)
    finally:
        await pool.close()


async def test_sqlalchemy_style_url_is_accepted(postgres_url: str) -> None:
    url = postgres_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    pool = await create_pool(PostgresSettings(url=url, pool_max=1))
    try:
        await ping(pool)
    finally:
        await pool.close()
