"""RabbitMQ down while webhooks arrive, and restarted under load (issue 14, scenarios 4 and 5),
on a private broker node (the shared one serves other tests): the node really stops (clean
shutdown, as in a rolling upgrade) and a new one starts on the same data."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from trackai_testing.servers import PrivateRabbit, private_servers_available

from .accounting import assert_clean
from .conftest import Pipeline
from .load import Traffic, all_sent, delivered, wait

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def private_rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbit]:
    if problem := private_servers_available():
        pytest.fail(problem)
    broker = PrivateRabbit(tmp_path_factory.mktemp("rabbit"))
    broker.start()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def amqp_url(private_rabbit: PrivateRabbit) -> str:
    """Every process of this module's pipeline talks to the private broker."""
    return private_rabbit.url


@pytest.mark.timeout(600)
def test_rabbitmq_down_while_webhooks_arrive_and_restarted_under_load(
    pipeline: Pipeline, private_rabbit: PrivateRabbit
) -> None:
    """Sales stream in; the broker stops with messages in flight and stays down while more
    arrive (each still answered 200: the outbox holds it); a new broker starts on the same data:
    every acknowledged sale at Meta once, nothing dead."""
    traffic = Traffic(pipeline)
    try:
        wait("10 sales at Meta", lambda: delivered(pipeline) >= 10)
        private_rabbit.stop()
        down_from = traffic.acked()
        wait(
            "10 webhooks acknowledged with the broker down",
            lambda: traffic.acked() >= down_from + 10,
        )
        during = traffic.acked() - down_from
        private_rabbit.start()
        back_from = traffic.acked()
        wait("10 more sales after the restart", lambda: traffic.acked() >= back_from + 10)
    finally:
        traffic.stop()
    assert set(traffic.answers) == {200}, (sorted(set(traffic.answers)), traffic.errors[:3])
    account = pipeline.ledger.settle(pipeline.meta, 240, until=all_sent(pipeline))
    assert_clean(account)
    assert len(account.delivered) == traffic.acked()
    print(f"\nbroker restart: {traffic.acked()} sales, {during} acknowledged while it was down")
