"""Retention sweeps on the migrated schema: old inbox ids, published outbox rows and sessions go,
raw IP/user agent of older sessions are blanked, and everything recent (or unpublished) stays."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from trackai_kit.retention import sweep
from trackai_matcher.bootstrap import retention_rules
from trackai_matcher.settings import Settings

pytestmark = pytest.mark.integration


async def test_old_rows_go_recent_rows_stay_and_old_network_data_is_blanked(matcher: Any) -> None:
    pool = matcher.pool
    tenant = uuid.uuid4()
    for message_id, age in (("old", 8), ("recent", 1)):
        await pool.execute(
            "INSERT INTO matcher.inbox (message_id, message_type, processed_at)"
            " VALUES ($1, 't', now() - $2 * interval '1 day')",
            message_id,
            age,
        )
    for message_id, age, published in (
        ("sent-old", 8, True),
        ("pending-old", 8, False),
        ("sent-new", 1, True),
    ):
        await pool.execute(
            "INSERT INTO matcher.outbox (message_id, routing_key, message_type, body, created_at,"
            " published_at) VALUES ($1, 'capi-dispatch', 't', '\\x00', now() - $2 * interval '1 day',"
            " CASE WHEN $3 THEN now() END)",
            message_id,
            age,
            published,
        )
    for session, age in (("ancient", 200), ("month", 40), ("fresh", 2)):
        await pool.execute(
            "INSERT INTO matcher.clicks (tenant_id, session_id, first_seen_at, last_seen_at,"
            " client_ip, user_agent) VALUES ($1, $2, now() - $3 * interval '1 day',"
            " now() - $3 * interval '1 day', '189.1.2.3', 'Mozilla/5.0')",
            tenant,
            session,
            age,
        )

    done = await sweep(pool, retention_rules(Settings()), batch_size=1)

    assert done == {"inbox": 1, "outbox": 1, "clicks": 1, "click_network": 1}
    assert {r["message_id"] for r in await pool.fetch("SELECT message_id FROM matcher.inbox")} == {
        "recent"
    }
    assert {r["message_id"] for r in await pool.fetch("SELECT message_id FROM matcher.outbox")} == {
        "pending-old",
        "sent-new",
    }
    clicks = {
        r["session_id"]: (r["client_ip"], r["user_agent"], r["ip_prefix"])
        for r in await pool.fetch(
            "SELECT session_id, host(client_ip) AS client_ip, user_agent, ip_prefix"
            " FROM matcher.clicks"
        )
    }
    assert clicks.keys() == {"month", "fresh"}
    assert clicks["month"] == (None, None, None)
    assert clicks["fresh"][:2] == ("189.1.2.3", "Mozilla/5.0")
    # A second sweep finds nothing left to do.
    assert set((await sweep(pool, retention_rules(Settings()))).values()) == {0}
