"""Every service's alembic history: round trips on an empty database, the runner's guarantees,
and the schema-wide rule that personal data is stored only as SHA-256 hashes."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
import textwrap
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from trackai_kit import migrations
from trackai_kit.postgres import asyncpg_dsn
from trackai_testing.plugin import database_url_for

pytestmark = pytest.mark.integration

REVISION_ID = re.compile(r"^\d{8}_\d{4}_[a-z0-9_]+$")


def run(coro_factory):  # type: ignore[no-untyped-def]
    """Run an asyncpg coroutine from a sync test (no loop runs in the test's thread)."""
    return asyncio.run(coro_factory())


def query(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return run(go)


def execute(url: str, sql: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run(go)


def head_of(service: str) -> str:
    head = ScriptDirectory(str(migrations.script_location(service))).get_current_head()
    assert head is not None
    return head


def objects_in(url: str, schema: str) -> set[str]:
    """Every relation, function and type left in ``schema`` except the version table."""
    rows = query(
        url,
        """
        SELECT 'relation ' || c.relname AS name FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1 AND c.relname NOT IN ('alembic_version', 'alembic_version_pkc')
        UNION ALL
        SELECT 'function ' || p.proname FROM pg_proc p
            JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1
        UNION ALL
        SELECT 'type ' || t.typname FROM pg_type t
            JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE n.nspname = $1 AND t.typtype IN ('e', 'd', 'c')
              AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid)
        """,
        schema,
    )
    return {r["name"] for r in rows}


def tables_in(url: str, schema: str) -> set[str]:
    rows = query(
        url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
        schema,
    )
    return {r["table_name"] for r in rows} - {"alembic_version"}


# ---------------------------------------------------------------------------------------------
# Histories


@pytest.mark.parametrize("service", migrations.SERVICES)
def test_revisions_follow_the_naming_convention(service: str) -> None:
    location = migrations.script_location(service)
    assert location == Path(__file__).resolve().parents[2] / "services" / service / "migrations"
    script = ScriptDirectory(str(location))
    revisions = list(script.walk_revisions())
    assert revisions, f"{service} has no migration"
    assert len(script.get_heads()) == 1, f"{service} history has several heads"
    for rev in revisions:
        assert REVISION_ID.fullmatch(rev.revision), rev.revision
        assert Path(rev.path).name == f"{rev.revision}.py"


@pytest.mark.parametrize("service", migrations.SERVICES)
def test_upgrade_downgrade_round_trip_on_an_empty_database(
    service: str, empty_database_url: str
) -> None:
    url = empty_database_url
    migrations.upgrade(service, url)
    assert migrations.current(service, url) == head_of(service)
    created = tables_in(url, service)
    assert created, f"{service} head creates no table"

    migrations.downgrade(service, url)
    assert migrations.current(service, url) is None
    assert objects_in(url, service) == set(), f"{service} downgrade left objects behind"

    migrations.upgrade(service, url)
    assert migrations.current(service, url) == head_of(service)
    assert tables_in(url, service) == created


def test_upgrade_all_and_downgrade_all(empty_database_url: str) -> None:
    url = empty_database_url
    migrations.upgrade_all(url)
    for service in migrations.SERVICES:
        assert migrations.current(service, url) == head_of(service)
    migrations.downgrade_all(url)
    for service in migrations.SERVICES:
        assert migrations.current(service, url) is None
        assert objects_in(url, service) == set()


SEED_TABLES = {
    "provisioner": {"tenants", "funnels"},
    "ingestion": {"events", "webhook_receipts", "outbox"},
    "matcher": {"clicks", "identities", "matches", "dedupe_registry", "outbox"},
    "dispatcher": {"dispatches", "dispatch_attempts", "breaker_states", "dlq_replays"},
    "agent": {"sessions", "transcript_entries", "escalations"},
    "console": {"users", "emq_daily"},
}


def test_seed_tables_exist_in_their_owners_schema(database_url: str) -> None:
    for schema, expected in SEED_TABLES.items():
        assert expected <= tables_in(database_url, schema), schema


def test_dedupe_registry_event_id_is_unique(database_url: str) -> None:
    rows = query(
        database_url,
        """
        SELECT i.indisunique FROM pg_index i
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
            WHERE i.indrelid = 'matcher.dedupe_registry'::regclass
              AND a.attname = 'event_id' AND i.indnatts = 1
        """,
    )
    assert any(r["indisunique"] for r in rows)


# ---------------------------------------------------------------------------------------------
# Personal data


PERSONAL_TOKENS = frozenset(
    {
        "email",
        "mail",
        "phone",
        "telephone",
        "mobile",
        "cellphone",
        "whatsapp",
        "cpf",
        "cnpj",
        "rg",
        "document",
        "birth",
        "birthday",
        "dob",
        "address",
        "street",
    }
)
PERSON_NAME = re.compile(
    r"^(first|last|full|given|family|middle|sur|customer|buyer|person|user|display|contact|nick)"
    r"_?name$|^(nome|username)$"
)
# Tables whose rows are people: a bare `name` there would be a person's name.
PERSON_TABLES = frozenset({"users", "customers", "buyers", "identities", "sessions", "escalations"})


def is_plaintext_personal(table: str, column: str) -> bool:
    """True when a column name says it holds personal data and does not say it is a hash."""
    if column.endswith("_hash"):
        return False
    tokens = set(column.split("_"))
    if tokens & PERSONAL_TOKENS:
        return True
    if PERSON_NAME.match(column):
        return True
    return column == "name" and table in PERSON_TABLES


@pytest.mark.parametrize(
    ("table", "column", "flagged"),
    [
        ("events", "email", True),
        ("events", "customer_email", True),
        ("events", "phone_number", True),
        ("events", "cpf", True),
        ("events", "first_name", True),
        ("events", "buyer_name", True),
        ("users", "name", True),
        ("events", "email_hash", False),
        ("events", "first_name_hash", False),
        ("events", "product_name", False),
        ("dispatches", "event_name", False),
        ("tenants", "name", False),
    ],
)
def test_the_personal_data_rule_itself(table: str, column: str, flagged: bool) -> None:
    assert is_plaintext_personal(table, column) is flagged


def test_no_column_holds_plaintext_personal_data(database_url: str) -> None:
    rows = query(
        database_url,
        "SELECT table_schema, table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = ANY($1::text[])",
        list(migrations.SERVICES),
    )
    assert len(rows) > 100
    offending = [
        f"{r['table_schema']}.{r['table_name']}.{r['column_name']}"
        for r in rows
        if is_plaintext_personal(r["table_name"], r["column_name"])
    ]
    assert offending == []


def test_hash_columns_are_char64_checked_lowercase_hex(database_url: str) -> None:
    rows = query(
        database_url,
        """
        SELECT c.table_schema, c.table_name, c.column_name, c.data_type,
               c.character_maximum_length,
               EXISTS (
                   SELECT 1 FROM pg_constraint k
                   JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)
                   WHERE k.contype = 'c'
                     AND k.conrelid = format('%I.%I', c.table_schema, c.table_name)::regclass
                     AND a.attname = c.column_name
                     AND pg_get_constraintdef(k.oid) LIKE '%^[0-9a-f]{64}$%'
               ) AS checked
        FROM information_schema.columns c
        WHERE c.table_schema = ANY($1::text[])
          AND (c.column_name LIKE '%email_hash' OR c.column_name LIKE '%phone_hash')
        """,
        list(migrations.SERVICES),
    )
    assert {f"{r['table_schema']}.{r['table_name']}" for r in rows} >= {
        "ingestion.events",
        "matcher.identities",
        "console.users",
    }
    for r in rows:
        where = f"{r['table_schema']}.{r['table_name']}.{r['column_name']}"
        assert (r["data_type"], r["character_maximum_length"]) == ("character", 64), where
        assert r["checked"], f"{where} has no lowercase-hex CHECK"


def test_a_plaintext_email_is_refused_by_the_database(database_url: str) -> None:
    async def attempt(value: str) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            await conn.execute(
                "INSERT INTO console.users (email_hash, password_hash, role) "
                "VALUES ($1, 'x', 'operator')",
                value,
            )
        finally:
            await conn.close()

    for value in ("maria@example.com", "A" * 64):
        with pytest.raises(asyncpg.CheckViolationError):
            run(lambda v=value: attempt(v))
    run(lambda: attempt("a" * 64))


# ---------------------------------------------------------------------------------------------
# The runner


def _fake_root(tmp_path: Path, service: str, body: str) -> Path:
    versions = tmp_path / service / "migrations" / "versions"
    versions.mkdir(parents=True)
    (versions.parent / "env.py").write_text(
        f"from trackai_kit.migrations import run_env\n\nrun_env({service!r})\n"
    )
    (versions / "20990101_0000_broken.py").write_text(textwrap.dedent(body))
    return tmp_path


def test_a_failing_migration_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_database_url: str
) -> None:
    root = _fake_root(
        tmp_path,
        "agent",
        """
        from alembic import op

        revision = "20990101_0000_broken"
        down_revision = None


        def upgrade() -> None:
            op.execute("CREATE TABLE agent.half_done (id int); CREATE TABLE agent.t2 (id int);")
            op.execute("SELECT no_such_function()")
        """,
    )
    monkeypatch.setenv("TRACKAI_MIGRATIONS_ROOT", str(root))
    with pytest.raises(Exception, match="no_such_function"):
        migrations.upgrade("agent", empty_database_url)
    assert tables_in(empty_database_url, "agent") == set()
    assert migrations.current("agent", empty_database_url) is None


def test_concurrent_upgrades_of_one_schema_serialise(empty_database_url: str) -> None:
    # Replicas starting together are separate processes; the advisory lock orders them.
    code = "import sys; from trackai_kit.migrations import upgrade; upgrade('matcher', sys.argv[1])"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, empty_database_url], stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    assert migrations.current("matcher", empty_database_url) == head_of("matcher")


def test_in_process_upgrades_from_several_threads(empty_database_url: str) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(migrations.upgrade, s, empty_database_url) for s in ("agent", "console")
        ]
        for future in futures:
            future.result()
    assert migrations.current("agent", empty_database_url) == head_of("agent")


async def test_upgrade_works_from_inside_a_running_event_loop(empty_database_url: str) -> None:
    migrations.upgrade("console", empty_database_url)
    assert migrations.current("console", empty_database_url) == head_of("console")


def test_offline_mode_emits_the_whole_script() -> None:
    buffer = io.StringIO()
    config = Config(output_buffer=buffer)
    config.set_main_option("script_location", str(migrations.script_location("ingestion")))
    config.attributes[migrations.DATABASE_URL_ATTRIBUTE] = "postgresql://u@db.invalid/trackai"
    command.upgrade(config, "head", sql=True)
    sql = buffer.getvalue()
    assert sql.index("CREATE SCHEMA IF NOT EXISTS ingestion") < sql.index(
        "CREATE TABLE ingestion.events"
    )
    assert "ingestion.alembic_version" in sql
    assert "CREATE TABLE ingestion.outbox" in sql


def test_script_location_errors_are_explicit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="unknown service"):
        migrations.script_location("billing")
    monkeypatch.setenv("TRACKAI_MIGRATIONS_ROOT", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="TRACKAI_MIGRATIONS_ROOT"):
        migrations.script_location("matcher")


def test_async_url_accepts_libpq_and_driver_urls() -> None:
    for url in (
        "postgresql://u:p@h:5432/db",
        "postgres://u:p@h:5432/db",
        "postgresql+psycopg://u:p@h:5432/db",
    ):
        assert migrations.async_url(url).render_as_string(hide_password=False) == (
            "postgresql+asyncpg://u:p@h:5432/db"
        )
    with_ssl = migrations.async_url("postgresql://u@h/db?sslmode=require")
    assert dict(with_ssl.query) == {"ssl": "require"}
    with pytest.raises(ValueError, match="PostgreSQL"):
        migrations.async_url("mysql://u@h/db")


def test_ensure_database_creates_once(postgres_url: str) -> None:
    name = f"trackai_ensure_{uuid.uuid4().hex[:10]}"
    target = database_url_for(postgres_url, name)
    try:
        migrations.ensure_database(target)
        migrations.ensure_database(target)
        rows = query(postgres_url, "SELECT 1 FROM pg_database WHERE datname = $1", name)
        assert len(rows) == 1
    finally:
        execute(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------------------------------
# Documentation


DOCS = Path(__file__).resolve().parents[2] / "docs" / "schema"


@pytest.mark.parametrize("schema", migrations.SERVICES)
def test_every_table_and_index_is_documented(schema: str, database_url: str) -> None:
    doc = (DOCS / f"{schema}.md").read_text()
    rows = query(
        database_url,
        """
        SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'i')
          AND c.relname NOT LIKE 'alembic_version%'
        """,
        schema,
    )
    # Primary keys and single-column UNIQUE keys are documented as "PK" / "unique" on the column.
    missing = sorted(
        r["relname"]
        for r in rows
        if f"`{r['relname']}" not in doc and not r["relname"].endswith(("_pkey", "_key"))
    )
    assert missing == [], f"docs/schema/{schema}.md does not mention {missing}"
