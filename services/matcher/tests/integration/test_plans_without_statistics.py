"""The consumer's statements keep their keys' indexes whatever the statistics say about a tenant.

A new tenant's launch-day burst lands before autoanalyze (or with autovacuum off): its rows are in
the tables but not in the statistics, which either do not exist yet or describe the tables before
the tenant arrived. Custom plans, costed with the bound tenant id, then rated the tenant at ~0 rows
and read all its sessions through another tenant-leading index to find one (0.3-1.1 s per stage 1-2
statement at 240k sessions, 0.9 s per stage-3 search, 25-39 ms per order lookup at 120k orders);
on small tables never analysed even generic plans read a tenant's stage-3 window through the
tenant-and-time index (docs/schema/matcher.md, "Plans and statistics"). The messages below go
through the production code (``MatchConversion`` on one pooled connection, asyncpg's prepared
statements) while auto_explain reports the plan of every statement executed; each plan must reach
``clicks``, ``identities`` and ``matches`` through an index keyed on what the statement looks up,
never by filtering the tenant's rows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import re
from typing import Any

import asyncpg
import pytest

from bench.traffic import ANDROID, IPHONE
from bench.traffic import conversion_event as conversion
from bench.traffic import hit_event as hit
from trackai.ingestion.v1 import events_pb2 as ingest
from trackai_matcher.entrypoints.consumer import IngestConsumer
from trackai_testing.explain import (
    INDEX_NODES,
    explained_pool,
    node_label,
    plan_nodes,
    read_problems,
)

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
#: The new tenant's sessions (a few thousand: a scan filtering them stands out) and those of the
#: four tenants the statistics know.
NEW_SESSIONS = 3000
KNOWN_SESSIONS = 400
TABLES = ("clicks", "identities", "matches", "dedupe_registry", "conversion_log", "inbox")

# Sessions of the last three days: every one with _fbp, half from an ad click (fbclid + _fbc), a
# quarter leaving an e-mail on a lead form (a third of those a phone too), IPs spread over a few
# hundred /24s, two user agents.
SESSIONS_SQL = """
INSERT INTO matcher.clicks (tenant_id, session_id, first_seen_at, last_seen_at, fbclid, fbc, fbp,
    client_ip, user_agent, browser_family, os_family, device_type, landing_url, utm)
SELECT $1::uuid, $2 || g, seen, seen + interval '5 minutes',
       CASE WHEN g % 2 = 0 THEN 'IwAR' || $2 || g END,
       CASE WHEN g % 2 = 0 THEN 'fb.1.1700000000000.IwAR' || $2 || g END,
       'fb.1.1700000000000.' || g,
       ('177.' || g % 7 || '.' || g % 251 || '.' || g % 13 + 1)::inet,
       CASE WHEN g % 3 = 0 THEN $4 ELSE $5 END, 'Chrome Mobile', 'Android', 'mobile',
       'https://lp.example.com/oferta', '{"utm_campaign": "launch"}'
FROM generate_series(1, $3::int) AS g,
     LATERAL (SELECT $6::timestamptz - interval '72 hours' * g / $3::int - interval '30 minutes'
              AS seen) AS t;
"""
IDENTITIES_SQL = """
INSERT INTO matcher.identities (tenant_id, session_id, email_hash, phone_hash, source,
    first_seen_at, last_seen_at)
SELECT tenant_id, session_id, encode(sha256(convert_to('mail-' || session_id, 'UTF8')), 'hex'),
       CASE WHEN id % 12 = 0
            THEN encode(sha256(convert_to('phone-' || session_id, 'UTF8')), 'hex') END,
       'lead', last_seen_at, last_seen_at
FROM matcher.clicks WHERE tenant_id = $1::uuid AND id % 4 = 0;
"""
# Earlier orders of the tenant, decided and registered (what the order lookups search).
ORDERS_SQL = """
WITH m AS (
    INSERT INTO matcher.matches (tenant_id, gateway, order_id, purchase_time, stage, method,
        click_id, session_id, score)
    SELECT tenant_id, 'kiwify', 'old-' || id, last_seen_at, 'semi', 'fbp', id, session_id, 1.0
    FROM matcher.clicks WHERE tenant_id = $1::uuid AND id % 2 = 1
    RETURNING id, tenant_id, order_id, purchase_time
), r AS (
    INSERT INTO matcher.dedupe_registry (event_id, tenant_id, gateway, order_id, event_name,
        source_status, match_id, event_time)
    SELECT encode(sha256(convert_to(order_id, 'UTF8')), 'hex'), tenant_id, 'kiwify', order_id,
           'Purchase', 'approved', id, purchase_time
    FROM m
)
INSERT INTO matcher.inbox (message_id, message_type) SELECT 'old-' || m.id, 'conversion' FROM m;
"""


async def load(conn: asyncpg.Connection, tenant: str, prefix: str, sessions: int) -> None:
    await conn.execute(SESSIONS_SQL, tenant, prefix, sessions, IPHONE, ANDROID, NOW)
    await conn.execute(IDENTITIES_SQL, tenant)
    await conn.execute(ORDERS_SQL, tenant)


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# --- plans as executed ----------------------------------------------------------------------


async def _json_codecs(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


#: What a statement may look a row up by; ``tenant_id`` and the time columns only narrow a lookup.
KEYS = {
    "id",
    "session_id",
    "email_hash",
    "phone_hash",
    "fbclid",
    "fbc",
    "fbp",
    "client_ip",
    "ip_prefix",
    "ua_digest",
    "gateway",
    "order_id",
    "message_id",
    "event_id",
}
_COLUMN = re.compile(r"\(+(\w+)\)?(?:::\w+)? (?:=|<>|<=|>=|<|>) ")


#: Rows a keyed lookup may still filter out (a session that began after the purchase, ...).
def problems(explained: dict[str, Any]) -> list[str]:
    query = " ".join(explained["Query Text"].split())
    sample = "hits >= 1" in query  # the read of the tenant's most recent sessions
    found = []
    for node in plan_nodes(explained["Plan"]):
        if sample and node["Node Type"] == "Sort":
            found.append("the tenant's sessions are sorted, not read in the index's order")
        found += read_problems(node, TABLES)
        if node.get("Relation Name") not in TABLES or node["Node Type"] == "ModifyTable":
            continue
        where = node_label(node)
        if node["Node Type"] in INDEX_NODES:
            keyed = set(_COLUMN.findall(node.get("Index Cond", ""))) & KEYS
            if not keyed and not (sample and node["Index Name"] == "clicks_tenant_recent_idx"):
                found.append(f"{where} is keyed on the tenant alone: {node.get('Index Cond')}")
        if sample and node["Node Type"] == "Bitmap Heap Scan":
            found.append(f"{where} reads every session of the tenant to sort them")
    return [f"{problem}\n    in: {query[:160]}" for problem in found]


# The listener collecting plans is added on every acquire; asyncpg warns when it is still there
# on release (it drops it itself).
@pytest.mark.filterwarnings("ignore:.*active log listener:asyncpg.InterfaceWarning")
@pytest.mark.parametrize(
    "statistics", ["never analysed", "analysed before the tenant arrived", "analysed"]
)
async def test_consumer_statements_use_their_keys_index(
    matcher: Any, make_service: Any, database_url: str, statistics: str
) -> None:
    tenant = matcher.registry.add_tenant()
    async with matcher.pool.acquire() as conn:
        for table in TABLES:
            await conn.execute(f"ALTER TABLE matcher.{table} SET (autovacuum_enabled = false)")
        for n in range(4):
            known = matcher.registry.add_tenant()
            await load(conn, known, f"sess-known{n}-", KNOWN_SESSIONS)
        if statistics == "analysed before the tenant arrived":
            await conn.execute("ANALYZE " + ", ".join(f"matcher.{t}" for t in TABLES))
        await load(conn, tenant, "sess-new-", NEW_SESSIONS)
        if statistics == "analysed":
            await conn.execute("ANALYZE " + ", ".join(f"matcher.{t}" for t in TABLES))
        probe = await conn.fetchrow(
            """
            SELECT host(c.client_ip) AS ip, c.user_agent,
                   (SELECT email_hash FROM matcher.identities
                    WHERE tenant_id = $1 AND phone_hash IS NULL LIMIT 1) AS email,
                   (SELECT phone_hash FROM matcher.identities
                    WHERE tenant_id = $1 AND phone_hash IS NOT NULL LIMIT 1) AS phone,
                   (SELECT order_id FROM matcher.matches WHERE tenant_id = $1 LIMIT 1) AS order_id
            FROM matcher.clicks c WHERE c.tenant_id = $1 AND c.session_id = 'sess-new-300'
            """,
            tenant,
        )
    assert probe is not None
    # Every kind of message, each reaching the statements it takes: a hit with an identity, then
    # orders matched by session id, e-mail, phone, fbclid, _fbc, _fbp, IP and user agent, and by
    # nothing; a redelivery; refunds of decided orders; an unmatched order matched later.
    refunded = ingest.CONVERSION_STATUS_REFUNDED
    first = conversion(tenant, "ORD-sck", NOW, sck="sess-new-10", em="")
    messages = [
        hit(tenant, "sess-new-live", NOW - dt.timedelta(minutes=3), ip="177.1.1.1", em=sha("x")),
        hit(tenant, "sess-new-live", NOW - dt.timedelta(minutes=2), ip="177.1.1.1", em=sha("x")),
        first,
        conversion(tenant, "ORD-email", NOW, em=probe["email"].strip()),
        conversion(tenant, "ORD-phone", NOW, em="", ph=probe["phone"].strip()),
        conversion(tenant, "ORD-fbclid", NOW, em="", fbclid="IwARsess-new-30"),
        conversion(tenant, "ORD-fbc", NOW, em="", fbc="fb.1.1700000000000.IwARsess-new-32"),
        conversion(tenant, "ORD-fbp", NOW, em="", fbp="fb.1.1700000000000.41"),
        conversion(tenant, "ORD-ipua", NOW, ip=probe["ip"], ua=probe["user_agent"], em=""),
        conversion(
            tenant,
            "ORD-none",
            NOW,
            status=ingest.CONVERSION_STATUS_PENDING_PAYMENT,
            method=ingest.PAYMENT_METHOD_PIX,
            ip="203.0.113.9",
            ua=IPHONE,
            em="",
        ),
        first,
        conversion(tenant, "ORD-sck", NOW, status=refunded, em=""),
        conversion(tenant, "ORD-none", NOW, sck="sess-new-50", em=""),
        conversion(tenant, probe["order_id"], NOW, status=refunded, em=""),
    ]
    async with explained_pool(database_url, search_path="matcher,public", init=_json_codecs) as (
        pool,
        plans,
    ):
        await matcher.feed(IngestConsumer(make_service(pool=pool)), *messages)
        await asyncio.sleep(0)  # notices reach the listener through the event loop
    assert [
        (await matcher.match_of(tenant, order))["method"]
        for order in ("ORD-sck", "ORD-email", "ORD-phone", "ORD-fbclid", "ORD-fbc", "ORD-fbp")
    ] == ["sck", "email_hash", "phone_hash", "fbclid", "fbclid", "fbp"]  # fbclid from _fbc
    assert (await matcher.match_of(tenant, "ORD-none"))["method"] == "sck"  # decided again
    texts = " ".join(plan["Query Text"] for plan in plans)
    for statement in ("ua_digest = md5", "hits >= 1", "stage = 'none'"):
        assert statement in texts, f"no plan reported for the statement with {statement!r}"
    found = [problem for plan in plans for problem in problems(plan)]
    assert found == [], "\n".join(found)
