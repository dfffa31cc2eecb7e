"""The console's tests need only its own schema: the template database is built from the
console's migrations alone (faster, and independent of other services' histories)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from trackai_kit.migrations import upgrade
from trackai_testing.plugin import _admin, database_url_for, in_thread, run_sync


@pytest.fixture(scope="session")
def migrated_template(postgres_url: str) -> Iterator[str]:
    name = f"trackai_console_tpl_{uuid.uuid4().hex[:12]}"
    run_sync(_admin(postgres_url, f'CREATE DATABASE "{name}"'))
    try:
        target = database_url_for(postgres_url, name)
        in_thread(lambda: upgrade("console", target))
        yield name
    finally:
        run_sync(_admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
