"""PostgreSQL restarted under load (issue 14, scenario 6), on a private cluster (the shared one
serves other tests): a fast shutdown terminates every session mid-transaction
(AdminShutdownError, ConnectionDoesNotExistError), then connections are refused while it starts
(CannotConnectNow). The matcher must retry, never dead-letter, and nothing may be lost."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from trackai_kit.migrations import upgrade_all
from trackai_kit.topology import INGEST_EVENTS, dlq_name
from trackai_testing.plugin import in_thread, run_sync
from trackai_testing.servers import PrivatePostgres, private_servers_available

from .accounting import assert_clean
from .conftest import Pipeline
from .load import Traffic, all_sent, delivered, wait

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if problem := private_servers_available():
        pytest.fail(problem)
    # Not under pytest's temporary directory: that is private to root, and the cluster runs as
    # `postgres` when the tests run as root.
    cluster = PrivatePostgres(Path(tempfile.mkdtemp(prefix="trackai-postgres-")))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.close()


async def _create(url: str, name: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@pytest.fixture
def database_url(private_postgres: PrivatePostgres) -> str:
    """Every process of this module's pipeline uses the private cluster, migrated to head."""
    run_sync(_create(private_postgres.url(), "trackai"))
    url = private_postgres.url("trackai")
    in_thread(lambda: upgrade_all(url))
    return url


@pytest.mark.timeout(600)
def test_postgresql_restarted_under_load_loses_nothing(
    pipeline: Pipeline, private_postgres: PrivatePostgres
) -> None:
    """Sales stream in; PostgreSQL stops (fast: sessions killed mid-transaction) and starts
    again. Webhooks that could not be stored are refused (5xx, which the gateway retries), never
    acknowledged and lost; every acknowledged one is at Meta once, none dead, nothing in the
    matcher's DLQ."""
    traffic = Traffic(pipeline)
    try:
        wait("10 sales at Meta", lambda: delivered(pipeline) >= 10)
        private_postgres.stop()
        refused_from = len(traffic.answers)
        wait(
            "3 webhooks answered with the database down",
            lambda: len(traffic.answers) >= refused_from + 3,
        )
        private_postgres.start()
        back_from = traffic.acked()
        wait("10 more sales after the restart", lambda: traffic.acked() >= back_from + 10)
    finally:
        traffic.stop()
    assert set(traffic.answers) <= {200, 503}, (sorted(set(traffic.answers)), traffic.errors[:3])
    account = pipeline.ledger.settle(pipeline.meta, 240, until=all_sent(pipeline))
    assert_clean(account)
    assert len(account.delivered) == traffic.acked()
    prefix = pipeline.stack.env["AMQP_PREFIX"]
    assert pipeline.queue_depths().get(prefix + dlq_name(INGEST_EVENTS)) == 0, (
        "matcher dead-lettered"
    )
    matcher = pipeline.stack.procs["matcher-consume"].logs()
    print(
        f"\ndatabase restart: {traffic.acked()} sales acknowledged, "
        f"{traffic.answers.count(503)} refused while it was down; matcher retries logged: "
        f"{matcher.count('retrying')}"
    )
