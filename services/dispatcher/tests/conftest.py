"""The dispatcher's tests need only its own schema: the template database they clone holds the
dispatcher migrations alone, so another service's migration cannot break (or slow) them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from trackai_kit.migrations import upgrade
from trackai_kit.postgres import asyncpg_dsn
from trackai_testing.plugin import database_url_for, in_thread, run_sync


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def migrated_template(postgres_url: str) -> Iterator[str]:
    name = f"trackai_dsp_tpl_{uuid.uuid4().hex[:12]}"
    run_sync(_admin(postgres_url, f'CREATE DATABASE "{name}"'))
    try:
        target = database_url_for(postgres_url, name)
        in_thread(lambda: upgrade("dispatcher", target))
        yield name
    finally:
        run_sync(_admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
