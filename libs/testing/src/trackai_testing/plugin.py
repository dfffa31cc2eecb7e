"""pytest plugin shared by every suite: real PostgreSQL and RabbitMQ, isolated per test.

Each test gets its own database (cloned from a migrated template) and its own queue-name prefix.
URLs come from the environment first; testcontainers are used only where Docker exists.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import asyncpg
import pytest
import pytest_asyncio

from trackai_kit.amqp import declared_names, forget_prefix
from trackai_kit.postgres import asyncpg_dsn, create_pool
from trackai_kit.settings import PostgresSettings
from trackai_kit.topology import (
    Topology,
    dispatcher_topology,
    ingestion_topology,
    matcher_topology,
    status_topology,
)

T = TypeVar("T")

# Settings default to production; the suites run on the test defaults (token, key ring, sandbox
# fakes), and so do the service processes they start, which inherit the environment. Set at import
# (the plugin is loaded by `-p` before any test module builds a Settings object).
os.environ.setdefault("TRACKAI_ENV", "test")

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
_PROBE_TIMEOUT_S = 3.0


def in_thread(fn: Callable[[], T]) -> T:
    """Call ``fn`` in a worker thread and return its result (or raise its exception).

    Sync fixtures may run while pytest-asyncio's session loop exists; code that runs its own event
    loop (``asyncio.run``, alembic's async engine) must not share that thread.
    """
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="trackai-testing")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a private event loop in a worker thread."""
    return in_thread(lambda: asyncio.run(coro))


def database_url_for(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server."""
    parts = urlsplit(asyncpg_dsn(url))
    return urlunsplit(parts._replace(path=f"/{database}"))


def _docker_available() -> bool:
    return shutil.which("docker") is not None or Path("/var/run/docker.sock").exists()


async def _postgres_reachable(url: str) -> str | None:
    try:
        conn = await asyncpg.connect(asyncpg_dsn(url), timeout=_PROBE_TIMEOUT_S)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def _amqp_reachable(url: str) -> str | None:
    try:
        conn = await aio_pika.connect(url, timeout=_PROBE_TIMEOUT_S)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def _admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=_PROBE_TIMEOUT_S)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


MISSING_TOOL = "missing tool:"
# Directories whose tests touch real servers: a test placed there is marked even when its module
# forgets to, so `make test-fast` ("no I/O") never runs it.
_MARK_BY_DIRECTORY = {"integration": "integration", "e2e": "e2e", "reliability": "integration"}


# Directories whose tests each start several real processes (a whole stack, private brokers and
# database clusters): with `pytest -n 2 --dist loadgroup` (`make test`) they run one at a time in
# one worker, beside the lighter tests in the other, so two stacks never fight for the two cores.
_SERIAL_DIRECTORIES = ("tests/e2e/", "tests/reliability/")
SERIAL_GROUP = "stacks"


def _serial(nodeid: str) -> bool:
    return nodeid.startswith(_SERIAL_DIRECTORIES)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under an ``integration``/``e2e``/``reliability`` directory accordingly,
    and put the whole-stack tests first (stable order otherwise): the scheduler below hands work
    out in collection order, so the longest unit starts at once and the light tests fill the
    other worker meanwhile, instead of the stacks starting last and running alone."""
    for item in items:
        for part in item.path.parts:
            marker = _MARK_BY_DIRECTORY.get(part)
            if marker and not item.get_closest_marker(marker):
                item.add_marker(marker)
    items.sort(key=lambda item: not _serial(item.nodeid))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With ``--dist loadgroup``: every whole-stack test in one unit of work, each other test in
    its own. (xdist's ``xdist_group`` mark cannot do it under pytest 9: xdist 3.8 writes the group
    into ``Item._nodeid``, which pytest 9 no longer reads, so the mark groups nothing.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    class StacksApart(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return SERIAL_GROUP if _serial(nodeid) else nodeid

    return StacksApart(config, log)


def require_tool(path_or_name: str, install_hint: str) -> str:
    """Path of an external tool the test needs; skip, with the reason CI refuses, when absent.

    ``.ci/run`` fails a run in which any test skipped with this reason: a suite silently skipped
    for a tool CI is expected to have would otherwise look green.
    """
    found = shutil.which(path_or_name) or (path_or_name if Path(path_or_name).exists() else None)
    if found is None:
        pytest.skip(f"{MISSING_TOOL} {path_or_name} ({install_hint})")
    return found


def shared_redis_url() -> str:
    """URL of the Redis the tests share (keys are prefixed per test); the environment first."""
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    """:func:`shared_redis_url` as a fixture."""
    return shared_redis_url()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL server the tests may create databases on (admin database)."""
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL") or ""
    url = url or DEFAULT_POSTGRES_URL
    problem = run_sync(_postgres_reachable(url))
    if problem is None:
        yield url
        return
    if not _docker_available():
        pytest.fail(
            f"PostgreSQL is not reachable at {url} ({problem}) and Docker is not available. "
            "Start PostgreSQL locally (e.g. `pg_ctlcluster 15 main start`, or "
            "`docker run -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16`) "
            "or set TEST_DATABASE_URL.",
            pytrace=False,
        )
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16-alpine", driver=None) as container:
        yield container.get_connection_url()


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """URL of a RabbitMQ broker (3.10+, quorum queues)."""
    url = os.environ.get("TEST_AMQP_URL") or os.environ.get("AMQP_URL") or DEFAULT_AMQP_URL
    problem = run_sync(_amqp_reachable(url))
    if problem is None:
        yield url
        return
    if not _docker_available():
        pytest.fail(
            f"RabbitMQ is not reachable at {url} ({problem}) and Docker is not available. "
            "Start RabbitMQ locally (e.g. `rabbitmq-server -detached`, or "
            "`docker run -p 5672:5672 rabbitmq:3.13`) or set TEST_AMQP_URL.",
            pytrace=False,
        )
    from testcontainers.rabbitmq import RabbitMqContainer

    with RabbitMqContainer("rabbitmq:3.13") as container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(container.port)
        yield f"amqp://guest:guest@{host}:{port}/"


@pytest.fixture(scope="session")
def migrated_template(postgres_url: str) -> Iterator[str]:
    """Name of a template database holding every service's schema at head (built once)."""
    try:
        from trackai_kit.migrations import upgrade_all
    except ModuleNotFoundError as exc:
        if exc.name != "trackai_kit.migrations":
            raise
        pytest.skip("trackai_kit.migrations is not available yet: no migrated template database")
    name = _unique("trackai_tpl")
    run_sync(_admin(postgres_url, f'CREATE DATABASE "{name}"'))
    try:
        target = database_url_for(postgres_url, name)
        in_thread(lambda: upgrade_all(target))
        yield name
    finally:
        run_sync(_admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def database_url(postgres_url: str, migrated_template: str) -> Iterator[str]:
    """A fresh database with every service's schema, dropped after the test."""
    name = _unique("trackai_test")
    run_sync(_admin(postgres_url, f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"'))
    try:
        yield database_url_for(postgres_url, name)
    finally:
        run_sync(_admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def empty_database_url(postgres_url: str) -> Iterator[str]:
    """A fresh empty database, dropped after the test."""
    name = _unique("trackai_empty")
    run_sync(_admin(postgres_url, f'CREATE DATABASE "{name}"'))
    try:
        yield database_url_for(postgres_url, name)
    finally:
        run_sync(_admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


PoolFactory = Callable[..., Awaitable[asyncpg.Pool]]


@pytest_asyncio.fixture(loop_scope="session")
async def pg_pool() -> AsyncIterator[PoolFactory]:
    """Factory ``await pg_pool(url, schema=None)`` for asyncpg pools closed after the test."""
    pools: list[asyncpg.Pool] = []

    async def make(url: str, schema: str | None = None, **settings: Any) -> asyncpg.Pool:
        pool = await create_pool(
            PostgresSettings(url=url, pool_min=1, pool_max=4, **settings), schema=schema
        )
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.close()


def _known_topology() -> Topology:
    return (
        ingestion_topology()
        .merge(matcher_topology())
        .merge(dispatcher_topology())
        .merge(status_topology())
    )


async def _delete_prefixed(url: str, prefix: str) -> None:
    queues, exchanges = declared_names(prefix)
    # Processes started by the test (services run as subprocesses) declare outside this registry;
    # the service topologies cover what they can have declared.
    known = _known_topology().prefixed(prefix)
    queues |= {q.name for q in known.all_queues()}
    exchanges |= {e.name for e in known.exchanges}
    connection = await aio_pika.connect(url, timeout=_PROBE_TIMEOUT_S)
    try:
        channel = await connection.channel()
        for queue in sorted(queues):
            if channel.is_closed:
                channel = await connection.channel()
            try:
                await channel.queue_delete(queue)
            except Exception:  # noqa: S112 - a queue that never existed is fine to skip
                continue
        for exchange in sorted(exchanges):
            if channel.is_closed:
                channel = await connection.channel()
            try:
                await channel.exchange_delete(exchange)
            except Exception:  # noqa: S112
                continue
    finally:
        await connection.close()
    forget_prefix(prefix)


@pytest.fixture
def amqp_prefix(amqp_url: str) -> Iterator[str]:
    """A unique queue/exchange prefix (``t<hex>.``); what is declared with it is deleted after."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    yield prefix
    run_sync(_delete_prefixed(amqp_url, prefix))
