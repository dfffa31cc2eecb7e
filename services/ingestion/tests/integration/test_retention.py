"""Retention sweeps on the migrated schema: old webhook receipts and published outbox rows go,
the raw IP/user agent of older events are blanked, and everything recent (or unpublished) stays."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from trackai_ingestion.bootstrap import retention_rules
from trackai_kit.retention import sweep

from .conftest import ingestion_settings

pytestmark = pytest.mark.integration


async def test_old_rows_go_recent_rows_stay_and_old_network_data_is_blanked(
    database_url: str, pg_pool: Any
) -> None:
    pool = await pg_pool(database_url, schema="ingestion")
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
                f"{label}-{published}",
                age,
                published,
            )

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
