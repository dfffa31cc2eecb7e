"""Matcher: accuracy on generated traffic with ground truth, and matching speed with 1M clicks.

``matcher.accuracy`` (one run, deterministic corpus): precision per stage and overall, recall
over purchases that have a true click. ``matcher.throughput``: conversions matched and committed
per second (the consumer's work per message: decode the ``IngestEvent``, then the whole
transaction: inbox, three stages, registry, log, outbox, statistics) with one million clicks
stored, 8 concurrent workers in one process, p50/p99 per conversion, as a ratio to the raw asyncpg
single-row insert of the same run; plus conversions per CPU-second of the matcher process
(``per_core``), of the PostgreSQL backends serving it (``per_core_pg``) and of both together.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from bench.context import BenchContext
from bench.registry import Metric, Ref, RunOnce, benchmark
from bench.stats import percentile
from bench.suites.baseline_postgres import temporary_database
from bench.traffic import Corpus, Session, TrafficGenerator, conversion_event, conversion_events
from trackai.ingestion.v1 import events_pb2 as ingest
from trackai_kit.logging import configure_logging
from trackai_kit.migrations import upgrade
from trackai_kit.postgres import create_pool
from trackai_kit.settings import LogSettings, PostgresSettings
from trackai_matcher.adapters import repository
from trackai_matcher.domain.scoring import ModelParams, ProbabilisticModel
from trackai_matcher.domain.tenants import Destination, TenantSetup
from trackai_matcher.domain.useragent import parse_user_agent
from trackai_matcher.entrypoints.consumer import purchase_from_proto
from trackai_matcher.service_layer.ingest import MatchConversion, MatcherConfig
from trackai_matcher.service_layer.matching import MatchEngine
from trackai_matcher.telemetry import MatcherMetrics

INSERT_SINGLE = "baseline.postgres.insert_single"
WORKERS = 8
#: Messages prepared per second of a run (above any throughput this box reaches).
PREPARED_PER_SECOND = 2500
CLICKS = 1_000_000
TENANTS = 50


class StaticDirectory:
    """Every tenant has the demo pixel as its default destination (no registry in the bench)."""

    async def setup(self, tenant_id: str) -> TenantSetup:
        return TenantSetup(tenant_id, Destination("1234567890"))


@contextlib.asynccontextmanager
async def matcher_database(ctx: BenchContext) -> AsyncIterator[asyncpg.Pool]:
    async with temporary_database(ctx.settings.database_url) as name:
        base = ctx.settings.database_url.rsplit("/", 1)[0]
        url = f"{base}/{name}"
        await asyncio.to_thread(upgrade, "matcher", url)
        # As the consume process opens it (no reset round trip on release).
        pool = await create_pool(
            PostgresSettings(url=url, pool_max=WORKERS + 2, command_timeout_s=600),
            schema="matcher",
            reset_on_release=False,
        )
        try:
            yield pool
        finally:
            await pool.close()


def service(pool: asyncpg.Pool) -> MatchConversion:
    # The matcher's per-event alerts (low EMQ on synthetic data) are not what is measured.
    configure_logging(LogSettings(level="ERROR"), "bench")
    return MatchConversion(
        pool,
        store=repository,
        directory=StaticDirectory(),
        engine=MatchEngine(ProbabilisticModel(ModelParams()), repository),
        config=MatcherConfig(),
        metrics=MatcherMetrics(),
    )


# ---------------------------------------------------------------------------------------------
# Accuracy


async def load_sessions(pool: asyncpg.Pool, sessions: list[Session]) -> None:
    clicks, identities = [], []
    for s in sessions:
        traits = parse_user_agent(s.ua)
        clicks.append(
            (
                s.tenant_id,
                s.session_id,
                s.first_seen,
                s.last_seen,
                s.fbclid,
                s.fbc,
                s.fbp,
                s.ip,
                s.ua,
                traits.browser_family,
                traits.os_family,
                traits.device_type,
                s.landing_url,
                s.utm,
            )
        )
        if s.email_hash or s.phone_hash:
            identities.append((s.tenant_id, s.session_id, s.email_hash, s.phone_hash, s.last_seen))
    async with pool.acquire() as conn:
        await conn.executemany(
            """INSERT INTO matcher.clicks (tenant_id, session_id, first_seen_at, last_seen_at,
                   fbclid, fbc, fbp, client_ip, user_agent, browser_family, os_family,
                   device_type, landing_url, utm)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8::inet, $9, $10, $11, $12, $13, $14)""",
            clicks,
        )
        await conn.executemany(
            """INSERT INTO matcher.identities (tenant_id, session_id, email_hash, phone_hash,
                   source, first_seen_at, last_seen_at) VALUES ($1, $2, $3, $4, 'lead', $5, $5)""",
            identities,
        )
        await conn.execute("ANALYZE matcher.clicks; ANALYZE matcher.identities")


@dataclass
class Tally:
    predicted: int = 0
    correct: int = 0

    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 1.0


def score_corpus(
    corpus: Corpus, decided: dict[tuple[str, str], tuple[str, str | None]]
) -> dict[str, float]:
    stages = {s: Tally() for s in ("deterministic", "semi", "probabilistic")}
    with_click = found = 0
    for order in corpus.orders:
        stage, session = decided[(order.tenant_id, order.order_id)]
        if order.true_session is not None:
            with_click += 1
        if stage == "none":
            continue
        tally = stages[stage]
        tally.predicted += 1
        if session == order.true_session:
            tally.correct += 1
            found += 1
    matched = sum(t.predicted for t in stages.values())
    correct = sum(t.correct for t in stages.values())
    orders = len(corpus.orders)
    figures = {f"precision_{k}": v.precision() * 100 for k, v in stages.items()}
    figures |= {f"share_{k}": v.predicted / orders * 100 for k, v in stages.items()}
    figures["precision_overall"] = correct / matched * 100 if matched else 100.0
    figures["recall"] = found / with_click * 100 if with_click else 0.0
    figures["true_click_share"] = with_click / orders * 100
    return figures


ACCURACY_METRICS = [
    *(Metric(f"precision_{k}", "%") for k in ("deterministic", "semi", "probabilistic", "overall")),
    Metric("recall", "%"),
    *(Metric(f"share_{k}", "% of orders") for k in ("deterministic", "semi", "probabilistic")),
    Metric("true_click_share", "% of orders"),
]


@benchmark("matcher.accuracy", metrics=ACCURACY_METRICS, repeat=False)
async def accuracy(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """Precision per stage and recall on generated traffic with ground truth (one run)."""
    purchases = ctx.scale(6000, 2000)
    corpus = TrafficGenerator(seed=20261130).generate(tenants=3, purchases=purchases)
    async with matcher_database(ctx) as pool:
        await load_sessions(pool, corpus.sessions)
        svc = service(pool)

        async def once() -> dict[str, float]:
            for order in corpus.orders:
                for event in conversion_events(order):
                    await svc.handle_conversion(event.message_id, purchase_from_proto(event, None))
            rows = await pool.fetch(
                "SELECT tenant_id, order_id, stage, session_id FROM matcher.matches"
            )
            decided = {
                (str(r["tenant_id"]), r["order_id"]): (r["stage"], r["session_id"]) for r in rows
            }
            return score_corpus(corpus, decided)

        yield once


# ---------------------------------------------------------------------------------------------
# Speed

LOAD_SQL = f"""
INSERT INTO matcher.clicks (tenant_id, session_id, first_seen_at, last_seen_at, fbclid, fbc, fbp,
    client_ip, user_agent, browser_family, os_family, device_type, landing_url, utm)
SELECT md5('tenant' || t)::uuid, 'sess-' || g, seen, seen + r_dur * interval '30 minutes',
    CASE WHEN r_ad < 0.5 THEN 'IwAR' || md5('clid' || g) END,
    CASE WHEN r_ad < 0.5 THEN 'fb.1.' || (extract(epoch FROM seen) * 1000)::bigint
        || '.IwAR' || md5('clid' || g) END,
    'fb.1.' || (extract(epoch FROM seen) * 1000)::bigint || '.' || (g::bigint * 7919 % 2147483647),
    CASE WHEN r_ip < 0.5 THEN ('177.' || (10 + r_net * 40)::int || '.' || (r_net * 250)::int
                               || '.' || (1 + (g % 250)))::inet
         ELSE ('189.' || (g % 200) || '.' || ((g / 200) % 256) || '.'
               || (1 + (g / 51200) % 250))::inet
    END,
    'Mozilla/5.0 (Linux; Android 1' || (r_ua * 4)::int || '; SM-A' || (r_ua * 300)::int
        || ') AppleWebKit/537.36 Chrome/12' || (r_ua * 9)::int || '.0 Mobile Safari/537.36',
    'Chrome', 'Android', 'mobile', 'https://lp.example.com/oferta',
    jsonb_build_object('utm_source', 'facebook', 'utm_campaign', 'camp-' || (r_ua * 5)::int)
FROM (SELECT g, floor({TENANTS} * power(random(), 2))::int AS t,
             now() - interval '6 days' + random() * interval '5 days' AS seen,
             random() AS r_dur, random() AS r_ad, random() AS r_ip, power(random(), 3) AS r_net,
             power(random(), 2) AS r_ua
      FROM generate_series(1, {CLICKS}) AS g) s
"""
IDENTITIES_SQL = """
INSERT INTO matcher.identities (tenant_id, session_id, email_hash, source, first_seen_at,
    last_seen_at)
SELECT tenant_id, session_id, encode(sha256(convert_to(session_id, 'UTF8')), 'hex'), 'lead',
    last_seen_at, last_seen_at
FROM matcher.clicks WHERE id % 5 = 0
"""
SAMPLE_SQL = """
SELECT tenant_id::text, session_id, fbc, host(client_ip) AS ip, user_agent, last_seen_at,
    CASE WHEN id % 5 = 0 THEN encode(sha256(convert_to(session_id, 'UTF8')), 'hex') END AS em
FROM matcher.clicks TABLESAMPLE SYSTEM (2) LIMIT 20000
"""


_CLOCK_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:  # the process has gone
        return None
    # utime and stime are fields 14 and 15 of stat(5): 12 and 13 after the command name.
    return (int(fields[11]) + int(fields[12])) * _CLOCK_TICK_S


async def postgres_cpu(pool: asyncpg.Pool) -> dict[int, float]:
    """CPU seconds used so far by each server process of the pool's database (its backends and
    autovacuum workers; read from /proc: PostgreSQL runs on this machine)."""
    rows = await pool.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
    used = {row["pid"]: _process_cpu(row["pid"]) for row in rows}
    return {pid: cpu for pid, cpu in used.items() if cpu is not None}


def cpu_since(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def conversion_for(sample: asyncpg.Record, rng: random.Random) -> ingest.IngestEvent:
    """A purchase after a stored session, carrying what one of the four paths needs."""
    path = rng.random()
    sck = fbc = em = ip = ua = ""
    if path < 0.35:
        sck = sample["session_id"]
    elif path < 0.55 and sample["em"]:
        em = sample["em"]
    elif path < 0.75 and sample["fbc"]:
        fbc = sample["fbc"]
    else:  # the probabilistic path: only IP and user agent
        ip, ua = sample["ip"], sample["user_agent"]
    at = sample["last_seen_at"] + dt.timedelta(minutes=rng.uniform(1, 90))
    order = f"BENCH-{uuid.uuid4().hex[:16]}"
    return conversion_event(
        sample["tenant_id"], order, at, em=em or "e" * 64, ip=ip, ua=ua, sck=sck, fbc=fbc
    )


@benchmark(
    "matcher.throughput",
    metrics=(
        Metric("throughput", "conv/s", ratio_to=Ref(INSERT_SINGLE, "throughput")),
        Metric("per_core", "conv/CPU-s"),
        Metric("per_core_pg", "conv/CPU-s"),
        Metric("per_core_both", "conv/CPU-s"),
        Metric("p50", "ms", higher_is_better=False, ratio_to=Ref(INSERT_SINGLE, "p50")),
        Metric("p99", "ms", higher_is_better=False, ratio_to=Ref(INSERT_SINGLE, "p99")),
        Metric("p99_loaded", "ms", higher_is_better=False),
        Metric("load_1m_clicks", "s", higher_is_better=False),
    ),
)
async def throughput(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """Conversions matched and committed per second with 1M clicks stored, 8 workers."""
    async with matcher_database(ctx) as pool:
        started = time.perf_counter()
        async with pool.acquire() as conn:
            await conn.execute(LOAD_SQL)
            await conn.execute(IDENTITIES_SQL)
            await conn.execute("ANALYZE matcher.clicks; ANALYZE matcher.identities")
            samples = await conn.fetch(SAMPLE_SQL)
        load_s = time.perf_counter() - started
        svc = service(pool)
        rng = random.Random(5)
        seconds = ctx.seconds(3.0, 1.5)
        queued: list[bytes] = []

        def prepare(count: int) -> None:
            """Messages as the queue delivers them, built before the clock starts (building
            them is the generator's work, not the matcher's)."""
            queued[:] = [
                conversion_for(rng.choice(samples), rng).SerializeToString() for _ in range(count)
            ]

        async def worker(deadline: float, latencies: list[float]) -> int:
            done = 0
            while time.perf_counter() < deadline:
                if not queued:  # the run was faster than sized
                    prepare(WORKERS)
                event = ingest.IngestEvent.FromString(queued.pop())
                purchase = purchase_from_proto(event, None)
                t0 = time.perf_counter()
                await svc.handle_conversion(event.message_id, purchase)
                latencies.append(time.perf_counter() - t0)
                done += 1
            return done

        async def once() -> dict[str, float]:
            # Saturated: 8 workers, each conversion's latency includes waiting for the others.
            prepare(int(seconds * PREPARED_PER_SECOND))
            loaded: list[float] = []
            pg0 = await postgres_cpu(pool)
            deadline = time.perf_counter() + seconds
            cpu0, t0 = time.process_time(), time.perf_counter()
            counts = await asyncio.gather(*(worker(deadline, loaded) for _ in range(WORKERS)))
            cpu, elapsed = time.process_time() - cpu0, time.perf_counter() - t0
            pg = cpu_since(pg0, await postgres_cpu(pool))
            total = sum(counts)
            # Match latency proper: one conversion at a time.
            prepare(int(seconds / 2 * PREPARED_PER_SECOND))
            single: list[float] = []
            await worker(time.perf_counter() + seconds / 2, single)
            return {
                "throughput": total / elapsed,
                "per_core": total / cpu if cpu else 0.0,
                "per_core_pg": total / pg if pg else 0.0,
                "per_core_both": total / (cpu + pg) if cpu + pg else 0.0,
                "p50": percentile(single, 50) * 1000,
                "p99": percentile(single, 99) * 1000,
                "p99_loaded": percentile(loaded, 99) * 1000,
                "load_1m_clicks": load_s,
            }

        yield once
