"""Retention sweeps on the migrated schema: old webhook receipts and published outbox rows go,
the raw IP/user agent of older events are blanked, and everything recent (or unpublished) stays;
and the same sweeps on demand through RetentionService and `trackai retention run`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest

from trackai.common.v1 import common_service_pb2 as pb
from trackai.common.v1 import common_service_pb2_grpc as pb_grpc
from trackai_ingestion.bootstrap import retention_rules
from trackai_ingestion.entrypoints.grpc_access import POLICY
from trackai_kit.grpc import client_channel, local_dev_callers, local_dev_token, start_grpc_server
from trackai_kit.retention import RETENTION_SERVICE, RetentionServicer, retention_service, sweep
from trackai_kit.settings import GrpcSettings

from .conftest import ingestion_settings

pytestmark = pytest.mark.integration
TRACKAI = shutil.which("trackai", path=str(Path(sys.executable).parent)) or "trackai"


async def _seed(pool: asyncpg.Pool, run: str = "") -> None:
    """An old and a recent row of each kind the rules look at (``run`` keeps message ids apart)."""
    tenant = uuid.uuid4()
    for label, age in (("old", 40), ("new", 2)):
        await pool.execute(
            "INSERT INTO ingestion.events (tenant_id, kind, session_id, event_time, received_at,"
            " client_ip, user_agent) VALUES ($1, 'page_view', $2, now(),"
            " now() - $3 * interval '1 day', '189.1.2.3', 'Mozilla/5.0')",
            tenant,
            label,
            age,
        )
        await pool.execute(
            "INSERT INTO ingestion.webhook_receipts (tenant_id, gateway, outcome, http_status,"
            " body_redacted, received_at, reason) VALUES ($1, 'kiwify', 'accepted', 200, '{}',"
            " now() - $2 * interval '1 day', $3)",
            tenant,
            age,
            label,
        )
        for published in (True, False):
            await pool.execute(
                "INSERT INTO ingestion.outbox (message_id, routing_key, message_type, body,"
                " created_at, published_at) VALUES ($1, 'ingest-events', 't', '\\x00',"
                " now() - $2 * interval '1 day', CASE WHEN $3 THEN now() END)",
                f"{label}-{published}{run}",
                age,
                published,
            )


async def test_old_rows_go_recent_rows_stay_and_old_network_data_is_blanked(
    database_url: str, pg_pool: Any
) -> None:
    pool = await pg_pool(database_url, schema="ingestion")
    await _seed(pool)
    settings = ingestion_settings(database_url, "127.0.0.1:1")
    done = await sweep(pool, retention_rules(settings))

    assert done == {"receipts": 1, "outbox": 1, "event_network": 1}
    receipts = await pool.fetch("SELECT reason FROM ingestion.webhook_receipts")
    assert [r["reason"] for r in receipts] == ["new"]
    outbox = {r["message_id"] for r in await pool.fetch("SELECT message_id FROM ingestion.outbox")}
    assert outbox == {"old-False", "new-True", "new-False"}
    events = {
        r["session_id"]: (r["ip"], r["user_agent"])
        for r in await pool.fetch(
            "SELECT session_id, host(client_ip) AS ip, user_agent FROM ingestion.events"
        )
    }
    assert events == {"old": (None, None), "new": ("189.1.2.3", "Mozilla/5.0")}


async def _trackai(*args: str, **env: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        TRACKAI,
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_operator_runs_the_sweeps_on_demand_and_sees_what_they_removed(
    database_url: str, pg_pool: Any
) -> None:
    pool = await pg_pool(database_url, schema="ingestion")
    await _seed(pool)
    settings = ingestion_settings(database_url, "127.0.0.1:1")
    name, register = retention_service("ingestion", pool, retention_rules(settings))
    # The server's real allow-list: the operator only.
    server = await start_grpc_server(
        GrpcSettings(port=0, callers=local_dev_callers()), register, [name], POLICY
    )
    target = f"127.0.0.1:{server.port}"
    operator = {"INGESTION_GRPC_TARGET": target, "GRPC_CLIENT_TOKEN": local_dev_token("operator")}
    try:
        code, out, err = await _trackai(
            "retention", "run", "--service", "ingestion", "--json", **operator
        )
        assert code == 0, err
        assert json.loads(out) == [
            {
                "service": "ingestion",
                "rule": "receipts",
                "table": "ingestion.webhook_receipts",
                "action": "deleted",
                "keep_days": 30.0,
                "rows": 1,
                "more": False,
            },
            {
                "service": "ingestion",
                "rule": "outbox",
                "table": "ingestion.outbox",
                "action": "deleted",
                "keep_days": 7.0,
                "rows": 1,
                "more": False,
            },
            {
                "service": "ingestion",
                "rule": "event_network",
                "table": "ingestion.events",
                "action": "blanked",
                "keep_days": 30.0,
                "rows": 1,
                "more": False,
            },
        ]
        assert await pool.fetchval("SELECT count(*) FROM ingestion.webhook_receipts") == 1
        # Again: nothing left to remove. The text form, with every rule.
        code, out, err = await _trackai("retention", "run", "--service", "ingestion", **operator)
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].split() == ["service", "rule", "table", "keep", "rows"]
        assert [line.split() for line in lines[1:]] == [
            ["ingestion", "receipts", "ingestion.webhook_receipts", "30d", "deleted", "0"],
            ["ingestion", "outbox", "ingestion.outbox", "7d", "deleted", "0"],
            ["ingestion", "event_network", "ingestion.events", "30d", "blanked", "0"],
        ]
        # Without --service every service runs; one that cannot be reached is reported, the
        # others still run, and the exit code says so.
        code, out, err = await _trackai(
            "retention",
            "run",
            "--json",
            MATCHER_GRPC_TARGET="127.0.0.1:1",
            DISPATCHER_GRPC_TARGET="127.0.0.1:1",
            TRACKAI_CLI_TIMEOUT="5",
            **operator,
        )
        assert code == 3
        assert {r["service"] for r in json.loads(out)} == {"ingestion"}
        assert "matcher at 127.0.0.1:1" in err and "dispatcher at 127.0.0.1:1" in err
        # No other caller may run it (least privilege: the agent and the console read ingestion).
        for caller in ("agent", "console", "matcher"):
            channel = client_channel(target, local_dev_token(caller))
            try:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await pb_grpc.RetentionServiceStub(channel).RunRetention(
                        pb.RunRetentionRequest(), timeout=10
                    )
                assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
            finally:
                await channel.close()
    finally:
        await server.stop(0)


async def test_a_run_cut_short_by_its_batch_limit_says_more_is_left(
    database_url: str, pg_pool: Any
) -> None:
    pool = await pg_pool(database_url, schema="ingestion")
    for run in ("a", "b", "c"):
        await _seed(pool, run)  # three old receipts, three old published outbox rows, ...
    rules = retention_rules(ingestion_settings(database_url, "127.0.0.1:1"))
    servicer = RetentionServicer("ingestion", pool, rules, batch_size=1, max_batches=2)
    server = await start_grpc_server(
        GrpcSettings(port=0, callers=local_dev_callers()),
        partial(pb_grpc.add_RetentionServiceServicer_to_server, servicer),
        [RETENTION_SERVICE.full_name],
        POLICY,
    )
    channel = client_channel(f"127.0.0.1:{server.port}", local_dev_token("operator"))
    try:
        stub = pb_grpc.RetentionServiceStub(channel)
        first = await stub.RunRetention(pb.RunRetentionRequest(), timeout=10)
        assert [(r.rule, r.rows, r.more) for r in first.rules] == [
            ("receipts", 2, True),
            ("outbox", 2, True),
            ("event_network", 2, True),
        ]
        second = await stub.RunRetention(pb.RunRetentionRequest(), timeout=10)
        assert [(r.rule, r.rows, r.more) for r in second.rules] == [
            ("receipts", 1, False),
            ("outbox", 1, False),
            ("event_network", 1, False),
        ]
    finally:
        await channel.close()
        await server.stop(0)
