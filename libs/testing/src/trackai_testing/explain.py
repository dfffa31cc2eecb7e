"""Index-usage checks: a database cloned from the migrated template, loaded once, and
``EXPLAIN (ANALYZE, FORMAT JSON)`` of a prepared query as a custom and as a generic plan.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from trackai_kit.postgres import asyncpg_dsn
from trackai_testing.plugin import database_url_for

INDEX_NODES = {"Index Scan", "Index Only Scan", "Bitmap Index Scan"}


@asynccontextmanager
async def template_clone(postgres_url: str, template: str, label: str) -> AsyncIterator[str]:
    """A database created from ``template`` for a module's worth of tests, dropped after."""
    name = f"trackai_idx_{label}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(asyncpg_dsn(postgres_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        yield database_url_for(postgres_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@dataclass(frozen=True)
class LoadedTenants:
    """A loaded clone: its URL, its largest and median tenant by rows of the counted table, the
    rows of every tenant (largest first), and the seconds the load statements took."""

    url: str
    tenants: dict[str, uuid.UUID]
    counts: list[int]
    load_s: float


@asynccontextmanager
async def loaded_clone(
    postgres_url: str,
    template: str,
    label: str,
    load: Sequence[str],
    *,
    count_table: str,
    analyze: str = "",
) -> AsyncIterator[LoadedTenants]:
    """:func:`template_clone` with ``load`` run in it (timed), then ``analyze`` (not timed), and
    ``count_table``'s tenants ranked by their rows."""
    async with template_clone(postgres_url, template, label) as url:
        conn = await asyncpg.connect(url)
        try:
            started = time.perf_counter()
            for statement in load:
                await conn.execute(statement)
            load_s = time.perf_counter() - started
            if analyze:
                await conn.execute(analyze)
            sizes = await conn.fetch(
                f"SELECT tenant_id, count(*) AS n FROM {count_table} GROUP BY 1 ORDER BY 2 DESC"  # noqa: S608 - a test's own table name
            )
        finally:
            await conn.close()
        tenants = {"largest": sizes[0]["tenant_id"], "median": sizes[len(sizes) // 2]["tenant_id"]}
        yield LoadedTenants(url, tenants, [r["n"] for r in sizes], load_s)


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of a JSON plan tree, depth first."""
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(plan_nodes(child))
    return nodes


@dataclass(frozen=True)
class Explained:
    seq_scans: list[str]
    indexes: set[str]
    execution_ms: float

    def describe(self) -> str:
        return f"indexes={sorted(self.indexes)} execution={self.execution_ms:.2f} ms"


def _as_text(value: object) -> str | None:
    """A parameter as PostgreSQL's text input: None is NULL, a list an array literal."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return "{" + ",".join('"' + str(v).replace('"', '\\"') + '"' for v in value) + "}"
    return str(value)


async def explain_prepared(
    url: str, sql: str, param_types: list[str], values: list[object], *, generic: bool
) -> Explained:
    """Plan ``sql`` as asyncpg would run it: prepared, then forced to a custom or generic plan.

    A generic plan is what a statement cached by asyncpg switches to after a few executions, so a
    query that only uses its index with literal values would pass a plain EXPLAIN and still scan
    in production.
    """
    conn = await asyncpg.connect(url)
    try:
        mode = "force_generic_plan" if generic else "force_custom_plan"
        await conn.execute(f"SET plan_cache_mode = {mode}")
        await conn.execute(f"PREPARE probe ({', '.join(param_types)}) AS {sql}")
        literals = [
            await conn.fetchval("SELECT quote_nullable($1::text)", _as_text(value))
            for value in values
        ]
        raw = await conn.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE probe ({', '.join(literals)})"
        )
    finally:
        await conn.close()
    plan = json.loads(raw)[0]
    nodes = plan_nodes(plan["Plan"])
    return Explained(
        seq_scans=[n.get("Relation Name", "?") for n in nodes if n["Node Type"] == "Seq Scan"],
        indexes={n["Index Name"] for n in nodes if n["Node Type"] in INDEX_NODES},
        execution_ms=float(plan["Execution Time"]),
    )


#: Session settings under which PostgreSQL reports every executed statement's plan, with its real
#: row counts, as a NOTICE (``auto_explain``): plans as the service's own code ran them.
AUTO_EXPLAIN = {
    "session_preload_libraries": "auto_explain",
    "auto_explain.log_min_duration": "0",
    "auto_explain.log_analyze": "on",
    "auto_explain.log_timing": "off",
    "auto_explain.log_format": "json",
    "auto_explain.log_level": "notice",
}


@asynccontextmanager
async def explained_pool(
    url: str,
    *,
    search_path: str,
    plan_cache_mode: str | None = None,
    init: Callable[[asyncpg.Connection], Coroutine[Any, Any, None]] | None = None,
) -> AsyncIterator[tuple[asyncpg.Pool, list[dict[str, Any]]]]:
    """A one-connection pool (each statement prepared once, as on a production connection) whose
    executed statements' plans are appended to the list, as auto_explain reports them."""
    plans: list[dict[str, Any]] = []

    def collect(_: object, message: asyncpg.PostgresLogMessage) -> None:
        _, marker, plan = message.message.partition("plan:")
        if marker:
            plans.append(json.loads(plan))

    async def setup(conn: PoolConnectionProxy) -> None:
        conn.add_log_listener(collect)  # asyncpg drops listeners on every release

    settings = {"search_path": search_path, **AUTO_EXPLAIN}
    if plan_cache_mode is not None:
        settings["plan_cache_mode"] = plan_cache_mode
    pool = await asyncpg.create_pool(
        asyncpg_dsn(url), min_size=1, max_size=1, server_settings=settings, init=init, setup=setup
    )
    assert pool is not None
    try:
        yield pool, plans
    finally:
        await pool.close()


#: Rows a plan node may read and throw away before it counts as scanning (auto_explain tests).
FILTERED_MAX = 20


def node_label(node: dict[str, Any]) -> str:
    """``Index Scan clicks clicks_session_uq``: what a plan node does, to what, through what."""
    return f"{node['Node Type']} {node.get('Relation Name')} {node.get('Index Name', '')}"


def read_problems(node: dict[str, Any], tables: tuple[str, ...]) -> list[str]:
    """What is wrong with one node reading one of ``tables``: a sequential scan, or more than
    :data:`FILTERED_MAX` rows read and thrown away. Inserts and other relations pass."""
    if node.get("Relation Name") not in tables or node["Node Type"] == "ModifyTable":
        return []
    found = []
    removed = node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Index Recheck", 0)
    if removed > FILTERED_MAX:
        found.append(f"{node_label(node)} filtered {removed} rows")
    if node["Node Type"] == "Seq Scan":
        found.append(f"{node_label(node)} scans the table")
    return found
