"""Alembic, driven from code: one history per service schema, run with SQLAlchemy async + asyncpg.

Each ``services/<svc>/migrations/env.py`` only calls :func:`run_env`; everything else (where the
scripts are, the URL, the schema, the version table, locking) is decided here, once.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from alembic import command, context
from alembic.config import Config
from pydantic import Field
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.engine.interfaces import DBAPICursor, ExecutionContext
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.util import await_only

from trackai_kit.postgres import check_identifier
from trackai_kit.settings import DEFAULT_DATABASE_URL, KitSettings

SERVICES = ("provisioner", "ingestion", "matcher", "dispatcher", "agent", "console")
#: Alembic's ``Config.attributes`` key carrying the URL from :func:`upgrade` to ``env.py``.
DATABASE_URL_ATTRIBUTE = "trackai.database_url"
VERSION_TABLE = "alembic_version"
MAINTENANCE_DATABASE = "postgres"

_T = TypeVar("_T")
_log = logging.getLogger(__name__)
# alembic.context is a module-level proxy: two migrations in one process must not overlap.
_ALEMBIC_LOCK = threading.Lock()


class MigrationSettings(KitSettings):
    """What the migration runner reads from the environment when nothing is passed in code."""

    database_url: str = Field(DEFAULT_DATABASE_URL, alias="DATABASE_URL")
    #: Directory holding ``<service>/migrations`` (the repository's ``services/``); needed only
    #: when the services are installed as wheels, away from their source tree.
    migrations_root: Path | None = Field(None, alias="TRACKAI_MIGRATIONS_ROOT")


def _check_service(service: str) -> str:
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")
    return service


def script_location(service: str) -> Path:
    """``services/<service>/migrations``, found without importing the service's code."""
    _check_service(service)
    root = MigrationSettings().migrations_root
    if root is not None:
        location = root / service / "migrations"
    else:
        spec = importlib.util.find_spec(f"trackai_{service}")
        if spec is None or spec.origin is None:
            raise FileNotFoundError(
                f"package trackai_{service} is not installed; install it or set "
                "TRACKAI_MIGRATIONS_ROOT to the directory holding <service>/migrations"
            )
        # origin = services/<svc>/src/trackai_<svc>/__init__.py in the (editable) workspace.
        location = Path(spec.origin).resolve().parents[2] / "migrations"
    if not (location / "env.py").is_file():
        raise FileNotFoundError(
            f"no alembic environment for {service} at {location} (expected env.py there); "
            "set TRACKAI_MIGRATIONS_ROOT to the directory holding <service>/migrations"
        )
    return location


def async_url(database_url: str) -> URL:
    """The SQLAlchemy URL for asyncpg, from a libpq-style or any ``postgresql+driver`` URL."""
    url = make_url(database_url)
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {url.render_as_string(hide_password=True)}")
    url = url.set(drivername="postgresql+asyncpg")
    # asyncpg spells libpq's sslmode as ssl; keep URLs copied from a managed database working.
    if "sslmode" in url.query and "ssl" not in url.query:
        url = url.update_query_dict({"ssl": url.query["sslmode"]}).difference_update_query(
            ["sslmode"]
        )
    return url


def _config(service: str, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location(service)))
    config.attributes[DATABASE_URL_ATTRIBUTE] = database_url
    return config


def upgrade(service: str, database_url: str, revision: str = "head") -> None:
    """Apply ``service``'s migrations up to ``revision`` (its schema is created if missing)."""
    config = _config(service, database_url)
    with _ALEMBIC_LOCK:
        command.upgrade(config, revision)


def downgrade(service: str, database_url: str, revision: str = "base") -> None:
    """Revert ``service``'s migrations down to ``revision``."""
    config = _config(service, database_url)
    with _ALEMBIC_LOCK:
        command.downgrade(config, revision)


def current(service: str, database_url: str) -> str | None:
    """The revision ``service``'s schema is at, or ``None`` before the first migration."""

    async def read() -> str | None:
        conn = await asyncpg.connect(_libpq_dsn(database_url))
        try:
            table = f"{check_identifier(service)}.{VERSION_TABLE}"
            if await conn.fetchval("SELECT to_regclass($1)", table) is None:
                return None
            value = await conn.fetchval(f"SELECT version_num FROM {table}")  # noqa: S608
            return str(value) if value is not None else None
        finally:
            await conn.close()

    return _run_sync(read)


def upgrade_all(database_url: str) -> None:
    """Upgrade every service's schema to head, provisioner first."""
    for service in SERVICES:
        upgrade(service, database_url)


def downgrade_all(database_url: str) -> None:
    """Downgrade every service's schema to base, in the reverse order of :func:`upgrade_all`."""
    for service in reversed(SERVICES):
        downgrade(service, database_url)


def _libpq_dsn(database_url: str) -> str:
    return (
        async_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


def ensure_database(database_url: str) -> None:
    """Create the database named in ``database_url`` unless it exists (via the ``postgres`` db)."""
    url = make_url(_libpq_dsn(database_url))
    name = url.database
    if not name:
        raise ValueError("the database URL names no database")

    async def create() -> None:
        maintenance = url.set(database=MAINTENANCE_DATABASE).render_as_string(hide_password=False)
        conn = await asyncpg.connect(maintenance)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if exists:
                return
            quoted = '"' + name.replace('"', '""') + '"'
            try:
                await conn.execute(f"CREATE DATABASE {quoted}")
            except asyncpg.DuplicateDatabaseError:
                return  # another process created it between our check and our create
            _log.info("created database %s", name)
        finally:
            await conn.close()

    _run_sync(create)


def grant_service_role(
    service: str, database_url: str, role: str, *, create_with_password: str | None = None
) -> None:
    """Give ``role`` the run-time rights on ``service``'s schema and nothing more: read and write
    its tables, use its sequences and functions; no DDL, no other service's schema. Run by the
    migrating (owner) role after each upgrade, so tables added later are covered too.

    ``create_with_password`` creates the role (LOGIN) when it does not exist: the local stack.
    In a deployment the database administrator creates the roles (docs/runbooks/deploy.md).
    """
    schema = check_identifier(_check_service(service))
    role = check_identifier(role)

    async def grant() -> None:
        conn = await asyncpg.connect(_libpq_dsn(database_url))
        try:
            async with conn.transaction():
                # Serialised: concurrent GRANTs on one schema can fail with "tuple concurrently
                # updated" (two migration steps, or two tests, at once).
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('trackai.grants'))")
                exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
                if not exists and create_with_password is not None:
                    password = create_with_password.replace("'", "''")
                    await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
                await conn.execute(
                    f"""
                    GRANT USAGE ON SCHEMA {schema} TO {role};
                    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role};
                    GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role};
                    GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO {role};
                    ALTER DEFAULT PRIVILEGES IN SCHEMA {schema}
                        GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role};
                    ALTER DEFAULT PRIVILEGES IN SCHEMA {schema}
                        GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role};
                    """
                )
        finally:
            await conn.close()

    _run_sync(grant)
    _log.info("granted %s its rights on schema %s", role, schema)


def _run_sync(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from synchronous code, even inside a running event loop.

    Alembic's API is synchronous; callers inside an event loop (a service's start-up, an async
    test) get the work done on a private thread with its own loop instead of an error.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(factory())
        except BaseException as exc:  # handed back to the calling thread below
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="trackai-migrations")
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    result: _T = outcome["value"]
    return result


def _database_url() -> str:
    url = context.config.attributes.get(DATABASE_URL_ATTRIBUTE)
    if url:
        return str(url)
    url = context.config.get_main_option("sqlalchemy.url")
    return url or MigrationSettings().database_url


def _lock_key(schema: str) -> str:
    return f"trackai.migrations.{schema}"


def _execute_scripts_natively(
    cursor: DBAPICursor, statement: str, parameters: Any, ctx: ExecutionContext
) -> bool:
    """Let one ``op.execute`` carry several statements, as the migration scripts do.

    asyncpg runs SQLAlchemy statements as prepared statements, which hold a single command; a
    parameterless script is sent through asyncpg's simple-query path instead.
    """
    if parameters or ";" not in statement.strip().rstrip(";"):
        return False
    # An empty SELECT through the adapter opens its transaction as usual and, having no columns,
    # leaves the cursor without a result description (the script returns no rows).
    cursor.execute("SELECT")
    driver = ctx.root_connection.connection.driver_connection
    if driver is None:
        return False
    await_only(driver.execute(statement))
    return True


def _migrate(connection: Connection, schema: str) -> None:
    connection.execute(text("SELECT pg_advisory_lock(hashtext(:key))"), {"key": _lock_key(schema)})
    try:
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
        # Alembic's own table caps revision ids at 32 characters; our `YYYYMMDD_HHMM_slug` names
        # can be longer, so the table is created first with room for them.
        connection.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {schema}.{VERSION_TABLE} ("
                "version_num varchar(128) NOT NULL, "
                f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))"
            )
        )
        # Databases migrated before that have alembic's varchar(32): widen in place (no rewrite).
        connection.execute(
            text(f"ALTER TABLE {schema}.{VERSION_TABLE} ALTER COLUMN version_num TYPE varchar(128)")
        )
        connection.commit()
        context.configure(
            connection=connection,
            version_table=VERSION_TABLE,
            version_table_schema=schema,
            transactional_ddl=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        connection.execute(
            text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": _lock_key(schema)}
        )
        connection.commit()


async def _run_online(schema: str, database_url: str) -> None:
    engine = create_async_engine(async_url(database_url), poolclass=NullPool)
    event.listen(engine.sync_engine, "do_execute", _execute_scripts_natively)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate, schema)
    finally:
        await engine.dispose()


def run_env(schema: str) -> None:
    """Body of every service's ``migrations/env.py``: migrate ``schema`` online or offline.

    The schema is created if missing and holds its own ``alembic_version`` table, so each
    service's history is independent. Online runs hold an advisory lock per schema, so two
    replicas starting together migrate one after the other.
    """
    check_identifier(schema)
    database_url = _database_url()
    if context.is_offline_mode():
        context.configure(
            url=async_url(database_url).set(drivername="postgresql"),
            literal_binds=True,
            version_table=VERSION_TABLE,
            version_table_schema=schema,
            transactional_ddl=True,
        )
        with context.begin_transaction():
            context.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            context.run_migrations()
        return
    _run_sync(lambda: _run_online(schema, database_url))
