"""Retention sweeps on the migrated schema: old attempt rows go (with their event links), the raw
IP and user agent inside events past Meta's window are removed, and recent rows stay whole."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from trackai_dispatcher.bootstrap import retention_rules
from trackai_kit.retention import sweep

from .conftest import Env, event_id_for

pytestmark = pytest.mark.integration


async def test_old_attempts_go_and_old_events_lose_their_raw_network_data(
    env: Env, db: asyncpg.Pool
) -> None:
    tenant = uuid.uuid4()
    payload = {
        "event_name": "Purchase",
        "user_data": {
            "em": ["a" * 64],
            "client_ip_address": "189.1.2.3",
            "client_user_agent": "UA",
        },
    }
    for label, age in (("old", 10), ("new", 1)):
        await db.execute(
            "INSERT INTO dispatches (event_id, tenant_id, pixel_id, event_name, event_time, state,"
            " payload, created_at, sent_at) VALUES ($1, $2, '1', 'Purchase', now() - $3 * interval '1 day',"
            " 'sent', $4::jsonb, now() - $3 * interval '1 day', now())",
            event_id_for(label),
            tenant,
            age,
            payload,
        )
        attempt = await db.fetchval(
            "INSERT INTO dispatch_attempts (batch_id, tenant_id, pixel_id, attempt, event_count,"
            " started_at, finished_at, latency_ms, outcome) VALUES ($1, $2, '1', 1, 1,"
            " now() - $3 * interval '1 day', now() - $3 * interval '1 day', 5, 'sent') RETURNING id",
            uuid.uuid4(),
            tenant,
            age * 4,
        )
        await db.execute(
            "INSERT INTO dispatch_attempt_events (event_id, attempt_id) VALUES ($1, $2)",
            event_id_for(label),
            attempt,
        )

    done = await sweep(db, retention_rules(env.settings()))

    assert done == {"attempts": 1, "event_network": 1}
    linked = await db.fetch("SELECT event_id FROM dispatch_attempt_events")
    assert [r["event_id"] for r in linked] == [event_id_for("new")]
    stored = {
        r["event_id"]: r["payload"]["user_data"]
        for r in await db.fetch("SELECT event_id, payload FROM dispatches")
    }
    assert stored[event_id_for("old")] == {"em": ["a" * 64]}
    assert stored[event_id_for("new")] == payload["user_data"]
