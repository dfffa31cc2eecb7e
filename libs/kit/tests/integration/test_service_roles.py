"""A service's database role reaches its own schema only (real PostgreSQL; unique role names,
dropped afterwards, since roles are cluster-wide)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from trackai_kit.migrations import grant_service_role
from trackai_testing.plugin import in_thread

pytestmark = pytest.mark.integration


def _as(database_url: str, role: str) -> str:
    return make_url(database_url).set(username=role, password=role).render_as_string(False)


@pytest.fixture
async def ingestion_role(database_url: str) -> AsyncIterator[str]:
    role = f"trackai_test_{uuid.uuid4().hex[:12]}_ingestion"
    in_thread(
        lambda: grant_service_role("ingestion", database_url, role, create_with_password=role)
    )
    yield role
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f"DROP OWNED BY {role}")
        await admin.execute(f"DROP ROLE {role}")
    finally:
        await admin.close()


async def test_a_service_role_reads_and_writes_its_schema_and_nothing_else(
    database_url: str, ingestion_role: str
) -> None:
    conn = await asyncpg.connect(_as(database_url, ingestion_role))
    try:
        own = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'ingestion' ORDER BY tablename"
        )
        assert own, "the ingestion schema has tables"
        for row in own:
            await conn.fetchval(f'SELECT count(*) FROM ingestion."{row["tablename"]}"')
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT * FROM provisioner.credentials")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE ingestion.smuggled (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f'DROP TABLE ingestion."{own[0]["tablename"]}"')
    finally:
        await conn.close()


async def test_granting_is_idempotent_and_covers_tables_added_later(
    database_url: str, ingestion_role: str
) -> None:
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute("CREATE TABLE ingestion.added_later (id int)")
    finally:
        await admin.close()
    in_thread(lambda: grant_service_role("ingestion", database_url, ingestion_role))
    conn = await asyncpg.connect(_as(database_url, ingestion_role))
    try:
        await conn.execute("INSERT INTO ingestion.added_later VALUES (1)")
    finally:
        await conn.close()
