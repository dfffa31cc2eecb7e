"""Reliability scenarios through the real processes (issue 14's suite), each ending in the ledger's
accounting: every acknowledged sale at Meta exactly once, or visibly dead with its reason."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx
import pytest

from trackai_testing.plugin import run_sync

from .accounting import assert_clean
from .conftest import Pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


def _orders(prefix: str, count: int) -> list[str]:
    run = uuid.uuid4().hex[:6]
    return [f"{prefix}-{run}-{n}" for n in range(count)]


def _trackai_json(pipeline: Pipeline, *args: str) -> object:
    trackai = Path(sys.executable).parent / "trackai"
    done = subprocess.run(
        [str(trackai), *args, "--json"],
        env=pipeline.stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


def test_duplicate_webhooks_sequential_and_concurrent_reach_meta_once(
    pipeline: Pipeline,
) -> None:
    """Gateways repeat themselves: each sale posted three times in a row, and others fifty times
    at once. One conversion each, one event at Meta each."""
    sequential, concurrent = _orders("seq", 10), _orders("conc", 4)
    with httpx.Client(timeout=30) as http:
        for order in sequential:
            body = pipeline.sale(order)
            answers = [pipeline.post(http, body) for _ in range(3)]
            assert [a.status_code for a in answers] == [200] * 3
            assert [a.json()["duplicate"] for a in answers] == [False, True, True]
            assert len({a.json()["conversion_id"] for a in answers}) == 1

        with ThreadPoolExecutor(max_workers=25) as pool:
            for order in concurrent:
                body = pipeline.sale(order)
                answers = list(pool.map(lambda _, b=body: pipeline.post(http, b), range(50)))
                assert {a.status_code for a in answers} == {200}, {a.text for a in answers}
                assert sum(not a.json()["duplicate"] for a in answers) == 1, order
                assert len({a.json()["conversion_id"] for a in answers}) == 1

    account = pipeline.ledger.settle(pipeline.meta)
    assert_clean(account)
    assert len(account.delivered) == len(sequential) + len(concurrent)


def test_bad_signatures_and_replayed_bodies_never_reach_meta_twice(pipeline: Pipeline) -> None:
    """A wrong signature and a body altered after signing are refused (401) and stored nowhere;
    a replayed signed body (the same bytes again, later) is a duplicate."""
    forged, tampered, genuine = _orders("forged", 5), _orders("tampered", 5), _orders("ok", 5)
    with httpx.Client(timeout=30) as http:
        for order in forged:
            answer = pipeline.post(http, pipeline.sale(order), signature="0" * 40)
            assert answer.status_code == 401, answer.text
        for order in tampered:
            body = pipeline.sale(order)
            signature = pipeline.sign(body)
            altered = body.replace(b'"order_id": "', b'"order_id": "x', 1)
            assert altered != body
            answer = pipeline.post(http, altered, signature=signature)
            assert answer.status_code == 401, answer.text
        signed = [(pipeline.sale(order), order) for order in genuine]
        for body, _ in signed:
            assert pipeline.post(http, body).json()["duplicate"] is False
        account = pipeline.ledger.settle(pipeline.meta)
        for body, _ in signed:  # replayed after they reached Meta
            answer = pipeline.post(http, body)
            assert answer.status_code == 200 and answer.json()["duplicate"] is True

    stored = run_sync(_stored_orders(pipeline))
    assert stored == set(genuine), "refused webhooks are stored nowhere"
    # The replays changed nothing: a later sale is at Meta, and still once each.
    with httpx.Client(timeout=30) as http:
        (later,) = _orders("later", 1)
        pipeline.post(http, pipeline.sale(later))
    account = pipeline.ledger.settle(pipeline.meta)
    assert_clean(account)
    assert len(account.delivered) == len(genuine) + 1


async def _stored_orders(pipeline: Pipeline) -> set[str]:
    conn = await asyncpg.connect(pipeline.ledger.database_url)
    try:
        rows = await conn.fetch(
            "SELECT order_id FROM ingestion.events WHERE tenant_id = $1 AND kind = 'conversion'",
            uuid.UUID(pipeline.tenant_id),
        )
    finally:
        await conn.close()
    return {r["order_id"] for r in rows}


def test_matcher_killed_mid_stream_loses_and_duplicates_nothing(pipeline: Pipeline) -> None:
    """SIGKILL the matcher while sales stream in (messages in flight, transactions open), start
    it again: every sale reaches Meta once."""
    orders = _orders("kill", 60)
    failures: list[str] = []

    def stream() -> None:
        with httpx.Client(timeout=30) as http:
            for order in orders:
                answer = pipeline.post(http, pipeline.sale(order))
                if answer.status_code != 200:
                    failures.append(answer.text)
                time.sleep(0.05)

    sender = threading.Thread(target=stream)
    sender.start()
    try:
        pipeline.ledger.settle(
            pipeline.meta, 90, until=lambda a: len(a.delivered) >= 15 and sender.is_alive()
        )
        pipeline.restart("matcher", "consume", kill=True)
    finally:
        sender.join(timeout=120)
    assert failures == []
    account = pipeline.ledger.settle(
        pipeline.meta, 180, until=lambda a: len(pipeline.ledger.acknowledged) == 60 and a.settled
    )
    assert_clean(account)
    assert len(account.delivered) == 60


def test_dead_events_replayed_twice_reach_meta_once(pipeline: Pipeline) -> None:
    """Meta fails every request until the retry ladder ends: the sales are dead, with their
    reason, and visible. Meta recovers; an operator replays the DLQ twice (a double click, two
    operators): each sale reaches Meta once."""
    pipeline.meta.add_fault("http_500", count=None)
    orders = _orders("dlq", 3)
    with httpx.Client(timeout=30) as http:
        for order in orders:
            assert pipeline.post(http, pipeline.sale(order)).status_code == 200
    account = pipeline.ledger.settle(pipeline.meta, 120, until=lambda a: len(a.dead) == 3)
    assert set(account.dead.values()) <= {"retries_exhausted", "meta_server_error"}, account.dead
    assert account.delivered == set()

    pipeline.meta.http.delete("/_sandbox/faults").raise_for_status()
    pipeline.dispatcher_api()
    for _ in range(2):
        _trackai_json(pipeline, "dlq", "replay", "--tenant", pipeline.tenant_id,
                      "--by", "reliability-suite")  # fmt: skip
    account = pipeline.ledger.settle(pipeline.meta, 120, until=lambda a: len(a.delivered) == 3)
    # Anything still on its way is ahead of a later sale in every queue: once that one is at
    # Meta, the replays have all been handled.
    with httpx.Client(timeout=30) as http:
        (later,) = _orders("later", 1)
        pipeline.post(http, pipeline.sale(later))
    account = pipeline.ledger.settle(pipeline.meta, 120, until=lambda a: len(a.delivered) == 4)
    assert_clean(account)
