"""The matching stages' queries use their indexes on a realistic volume (500,000 clicks).

Data is generated server-side (``generate_series``) over 200 tenants with a skewed size
distribution; each stage query is checked with ``EXPLAIN (ANALYZE, FORMAT JSON)`` both as a
custom plan (literal values) and as the generic plan a cached prepared statement gets.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
import pytest_asyncio

from trackai_matcher.adapters.candidates import EXACT_BRANCHES, TENANT_SAMPLE_SQL, exact_query
from trackai_testing.explain import explain_prepared, template_clone

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLICKS = 500_000
TENANTS = 200

# Tenant k gets a share proportional to the density of floor(TENANTS * random()^2): a few large
# tenants, a long tail of small ones. Traffic over the last 30 days; 45% of sessions come from an
# ad click (fbclid + _fbc), 75% carry _fbp; IPs concentrate on carrier ranges (shared /24s), user
# agents on a few hundred common builds; 20% of sessions leave an e-mail, 12% a phone.
LOAD_SQL = f"""
INSERT INTO matcher.clicks (
    tenant_id, session_id, first_seen_at, last_seen_at, hits, fbclid, fbc, fbp,
    client_ip, user_agent, browser_family, os_family, device_type, landing_url, utm)
SELECT
    md5('tenant' || t)::uuid,
    'sess-' || g,
    seen,
    seen + (r_dur * interval '45 minutes'),
    1 + (r_dur * 12)::int,
    CASE WHEN r_ad < 0.45 THEN 'IwAR' || substr(md5('clid' || g), 1, 24) END,
    CASE WHEN r_ad < 0.45
         THEN 'fb.1.' || (extract(epoch FROM seen) * 1000)::bigint
              || '.IwAR' || substr(md5('clid' || g), 1, 24) END,
    CASE WHEN r_fbp < 0.75
         THEN 'fb.1.' || (extract(epoch FROM seen) * 1000)::bigint || '.' || (g::bigint * 7919 % 2147483647)
    END,
    CASE WHEN r_ip < 0.90
             THEN ('177.' || (r_net * 40)::int || '.' || (r_net * 250)::int || '.'
                   || (1 + r_host * 253)::int)::inet
         WHEN r_ip < 0.97
             THEN ('2804:14c:' || to_hex((r_net * 4000)::int) || ':' || to_hex((r_host * 60000)::int)
                   || '::' || to_hex(g % 65535))::inet
    END,
    'Mozilla/5.0 (Linux; Android 1' || (r_ua * 4)::int || '; SM-A' || (r_ua * 300)::int
        || ') AppleWebKit/537.36 Chrome/12' || (r_ua * 9)::int || '.0 Mobile Safari/537.36',
    'Chrome Mobile', 'Android', 'mobile',
    'https://lp' || t || '.example.com/oferta?utm_source=facebook',
    jsonb_build_object('utm_source', 'facebook', 'utm_campaign', 'camp-' || (r_ua * 20)::int)
FROM (
    SELECT g,
           floor({TENANTS} * power(random(), 2))::int AS t,
           now() - random() * interval '30 days' AS seen,
           random() AS r_dur, random() AS r_ad, random() AS r_fbp, random() AS r_ip,
           power(random(), 3) AS r_net, random() AS r_host, power(random(), 2) AS r_ua
    FROM generate_series(1, {CLICKS}) AS g
) AS s
"""

IDENTITIES_SQL = """
INSERT INTO matcher.identities (
    tenant_id, session_id, email_hash, phone_hash, external_id, source, first_seen_at,
    last_seen_at)
SELECT tenant_id, session_id,
       encode(sha256(convert_to('buyer' || (id % 70000) || '@example.com', 'UTF8')), 'hex'),
       CASE WHEN id % 10 < 6
            THEN encode(sha256(convert_to('55119' || lpad((id % 70000)::text, 8, '0'), 'UTF8')),
                        'hex') END,
       'ext-' || id, 'lead', last_seen_at, last_seen_at
FROM matcher.clicks
WHERE id % 5 = 0
"""


@dataclass(frozen=True)
class Probe:
    """One stage query, the sample values bound to $1..$n, and the index that must serve it."""

    name: str
    sql: str
    params: tuple[str, ...]
    index: str
    table: str = "clicks"


PARAM_TYPES = {
    "tenant_id": "uuid",
    "session_id": "text",
    # char(64) columns: a text parameter would cast the column and miss the index.
    "email_hash": "bpchar",
    "phone_hash": "bpchar",
    "fbclid": "text",
    "fbc": "text",
    "fbp": "text",
    "ip": "text",
    "user_agent": "text",
    "purchase_time": "timestamptz",
    "sample_size": "int4",
}
WINDOW = "BETWEEN $3 - interval '{}' AND $3"
PROBES = [
    Probe(
        "stage1_session_id",
        "SELECT id, first_seen_at FROM matcher.clicks WHERE tenant_id = $1 AND session_id = $2",
        ("tenant_id", "session_id"),
        "clicks_session_uq",
    ),
    Probe(
        "stage1_email_hash",
        """SELECT session_id, last_seen_at FROM matcher.identities
           WHERE tenant_id = $1 AND email_hash = $2 AND last_seen_at <= $3
             AND last_seen_at > $3 - interval '30 days'
           ORDER BY last_seen_at DESC LIMIT 1""",
        ("tenant_id", "email_hash", "purchase_time"),
        "identities_email_idx",
        "identities",
    ),
    Probe(
        "stage1_phone_hash",
        """SELECT session_id, last_seen_at FROM matcher.identities
           WHERE tenant_id = $1 AND phone_hash = $2 AND last_seen_at <= $3
             AND last_seen_at > $3 - interval '30 days'
           ORDER BY last_seen_at DESC LIMIT 1""",
        ("tenant_id", "phone_hash", "purchase_time"),
        "identities_phone_idx",
        "identities",
    ),
    *(
        Probe(
            f"stage2_{key}",
            f"""SELECT id, session_id FROM matcher.clicks
                WHERE tenant_id = $1 AND {key} = $2 AND first_seen_at {WINDOW.format("7 days")}
                ORDER BY first_seen_at DESC LIMIT 1""",
            ("tenant_id", key, "purchase_time"),
            f"clicks_{key}_idx",
        )
        for key in ("fbclid", "fbc", "fbp")
    ),
    Probe(
        "stage3_same_ip",
        f"""SELECT id, user_agent, last_seen_at FROM matcher.clicks
            WHERE tenant_id = $1 AND client_ip = $2::inet AND last_seen_at {WINDOW.format("3 days")}""",
        ("tenant_id", "ip", "purchase_time"),
        "clicks_ip_idx",
    ),
    Probe(
        "stage3_same_network",
        f"""SELECT id, client_ip, last_seen_at FROM matcher.clicks
            WHERE tenant_id = $1
              AND ip_prefix = network(set_masklen($2::inet,
                                      CASE WHEN family($2::inet) = 4 THEN 24 ELSE 64 END))
              AND last_seen_at {WINDOW.format("3 days")}""",
        ("tenant_id", "ip", "purchase_time"),
        "clicks_ip_prefix_idx",
    ),
    Probe(
        "stage3_same_user_agent",
        f"""SELECT id, client_ip, last_seen_at FROM matcher.clicks
            WHERE tenant_id = $1 AND ua_digest = md5($2)::uuid
              AND last_seen_at {WINDOW.format("3 days")}""",
        ("tenant_id", "user_agent", "purchase_time"),
        "clicks_ua_idx",
    ),
    Probe(
        "stage3_tenant_sample",
        TENANT_SAMPLE_SQL,
        ("tenant_id", "sample_size"),
        "clicks_tenant_recent_idx",
    ),
]

# One real session of the tenant (with an ad click, _fbp and an IPv4) plus one e-mail and one
# phone hash seen on that tenant's lead forms; the purchase happens an hour after the session.
SAMPLE_SQL = """
SELECT c.tenant_id, c.session_id, i.email_hash, p.phone_hash, c.fbclid, c.fbc, c.fbp,
       host(c.client_ip) AS ip, c.user_agent, c.last_seen_at + interval '1 hour' AS purchase_time,
       5000 AS sample_size
FROM matcher.clicks c
JOIN LATERAL (SELECT email_hash FROM matcher.identities
              WHERE tenant_id = c.tenant_id AND email_hash IS NOT NULL
              ORDER BY id LIMIT 1) i ON true
JOIN LATERAL (SELECT phone_hash FROM matcher.identities
              WHERE tenant_id = c.tenant_id AND phone_hash IS NOT NULL
              ORDER BY id LIMIT 1) p ON true
WHERE c.tenant_id = $1 AND c.fbclid IS NOT NULL AND c.fbp IS NOT NULL
  AND family(c.client_ip) = 4
ORDER BY c.id LIMIT 1
"""


@dataclass
class Loaded:
    url: str
    timings: dict[str, float]
    tenants: dict[str, uuid.UUID]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def loaded(postgres_url: str, migrated_template: str) -> AsyncIterator[Loaded]:
    timings: dict[str, float] = {}
    async with template_clone(postgres_url, migrated_template, "matcher") as url:
        conn = await asyncpg.connect(url)
        try:
            started = time.perf_counter()
            await conn.execute(LOAD_SQL)
            timings["load_clicks_s"] = time.perf_counter() - started
            started = time.perf_counter()
            await conn.execute(IDENTITIES_SQL)
            timings["load_identities_s"] = time.perf_counter() - started
            started = time.perf_counter()
            await conn.execute("ANALYZE matcher.clicks; ANALYZE matcher.identities")
            timings["analyze_s"] = time.perf_counter() - started
            sizes = await conn.fetch(
                "SELECT tenant_id, count(*) AS n FROM matcher.clicks GROUP BY 1 ORDER BY 2 DESC"
            )
        finally:
            await conn.close()
        assert sum(r["n"] for r in sizes) == CLICKS
        assert len(sizes) >= TENANTS * 0.9
        tenants = {"largest": sizes[0]["tenant_id"], "median": sizes[len(sizes) // 2]["tenant_id"]}
        print(
            f"\nmatcher load: {CLICKS} clicks over {len(sizes)} tenants (largest "
            f"{sizes[0]['n']}, median {sizes[len(sizes) // 2]['n']}); "
            + ", ".join(f"{k}={v:.1f}" for k, v in timings.items())
        )
        yield Loaded(url, timings, tenants)


async def fetch_sample(loaded: Loaded, sql: str, tenant: str) -> asyncpg.Record:
    conn = await asyncpg.connect(loaded.url)
    try:
        sample = await conn.fetchrow(sql, loaded.tenants[tenant])
    finally:
        await conn.close()
    assert sample is not None, "generated data lacks a usable sample"
    return sample


@pytest.mark.parametrize("generic", [False, True], ids=["custom_plan", "generic_plan"])
@pytest.mark.parametrize("tenant", ["largest", "median"])
@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
async def test_stage_query_uses_its_index(
    loaded: Loaded, probe: Probe, tenant: str, generic: bool
) -> None:
    sample = await fetch_sample(loaded, SAMPLE_SQL, tenant)
    result = await explain_prepared(
        loaded.url,
        probe.sql,
        [PARAM_TYPES[key] for key in probe.params],
        [sample[key] for key in probe.params],
        generic=generic,
    )
    print(f"\n{probe.name} [{tenant}, {'generic' if generic else 'custom'}]: {result.describe()}")
    assert probe.table not in result.seq_scans, f"{probe.name} scans {probe.table} sequentially"
    assert probe.index in result.indexes, f"{probe.name} used {result.indexes or 'no index'}"


# The production statement of stages 1-2 (``repository.exact_query``), not a hand-written copy:
# the e-mail branch goes identity -> its session -> the visitor's most recent session with the
# same _fbp (a lateral ``id = s.id OR fbp = s.fbp``, which must stay a BitmapOr of two indexes).
EXACT_PARAM_TYPES = {
    "tenant": "uuid",
    "at": "timestamptz",
    "carrier0": "text",
    "email_hash": "bpchar",
    "phone_hash": "bpchar",
    "lookback": "interval",
    "fbclid": "text",
    "fbc": "text",
    "fbp": "text",
    "semi": "interval",
}
# An identity whose own session carries _fbp, and a purchase an hour after that session.
EMAIL_SESSION_SQL = """
SELECT i.tenant_id AS tenant, s.session_id AS carrier0, i.email_hash, p.phone_hash, s.fbclid,
       s.fbc, s.fbp, s.last_seen_at + interval '1 hour' AS at
FROM matcher.identities i
JOIN matcher.clicks s ON s.tenant_id = i.tenant_id AND s.session_id = i.session_id
JOIN LATERAL (SELECT phone_hash FROM matcher.identities
              WHERE tenant_id = i.tenant_id AND phone_hash IS NOT NULL
              ORDER BY id LIMIT 1) p ON true
WHERE i.tenant_id = $1 AND i.email_hash IS NOT NULL AND s.fbp IS NOT NULL AND s.fbc IS NOT NULL
ORDER BY i.id LIMIT 1
"""


@pytest.mark.parametrize("generic", [False, True], ids=["custom_plan", "generic_plan"])
@pytest.mark.parametrize("tenant", ["largest", "median"])
@pytest.mark.parametrize(
    ("branches", "expected"),
    [
        (
            ("email_hash",),
            {"identities_email_idx", "clicks_session_uq", "clicks_pkey", "clicks_fbp_idx"},
        ),
        (
            EXACT_BRANCHES,
            {
                "clicks_session_uq",
                "identities_email_idx",
                "identities_phone_idx",
                "clicks_fbp_idx",
                "clicks_fbclid_idx",
                "clicks_fbc_idx",
            },
        ),
    ],
    ids=["email_to_fbp_session", "all_branches"],
)
async def test_exact_stages_statement_uses_its_indexes(
    loaded: Loaded, branches: tuple[str, ...], expected: set[str], tenant: str, generic: bool
) -> None:
    query = exact_query(branches, carriers=1 if "carrier" in branches else 0)
    sample = await fetch_sample(loaded, EMAIL_SESSION_SQL, tenant)
    values = dict(sample) | {"lookback": "30 days", "semi": "7 days"}
    result = await explain_prepared(
        loaded.url,
        query.sql,
        [EXACT_PARAM_TYPES[name] for name in query.params],
        [values[name] for name in query.params],
        generic=generic,
    )
    print(
        f"\nexact {branches} [{tenant}, {'generic' if generic else 'custom'}]: {result.describe()}"
    )
    assert not {"clicks", "identities"} & set(result.seq_scans), result.seq_scans
    assert expected <= result.indexes, f"missing {expected - result.indexes}"
