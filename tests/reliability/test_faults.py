"""Faults around the pipeline (issue 14, scenarios 7 and 11): Redis down while webhooks arrive, and
each class of Meta error, each ending in the ledger's accounting."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from trackai_testing.faults import TcpProxy

from .accounting import Account, assert_clean
from .conftest import Pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


class ThreadedProxy:
    """A :class:`TcpProxy` on its own event loop thread, for the synchronous scenarios."""

    def __init__(self, host: str, port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.proxy = TcpProxy(host, port)
        self.port = self._run(self.proxy.start())

    def _run(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=10)

    def down(self) -> None:
        self._run(self.proxy.down())

    def up(self) -> None:
        self._run(self.proxy.up())

    def close(self) -> None:
        self._run(self.proxy.down())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


@pytest.fixture
def redis_proxy() -> Iterator[ThreadedProxy]:
    target = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    proxy = ThreadedProxy(target.hostname or "127.0.0.1", target.port or 6379)
    try:
        yield proxy
    finally:
        proxy.close()


def _orders(prefix: str, count: int) -> list[str]:
    run = uuid.uuid4().hex[:6]
    return [f"{prefix}-{run}-{n}" for n in range(count)]


def test_redis_down_loses_no_webhook(pipeline: Pipeline, redis_proxy: ThreadedProxy) -> None:
    """Redis holds the rate-limit counters and the agent's 401 tallies: with it down, webhooks
    are still acknowledged (the limiter fails open) and every sale reaches Meta once."""
    ingestion = pipeline.restart(
        "ingestion", "serve", kill=False, grpc=True,
        REDIS_URL=f"redis://127.0.0.1:{redis_proxy.port}/0",
    )  # fmt: skip
    pipeline.ingestion = ingestion
    with httpx.Client(timeout=30) as http:
        before = _orders("redis-up", 3)
        for order in before:
            assert pipeline.post(http, pipeline.sale(order)).status_code == 200
        redis_proxy.down()
        during = _orders("redis-down", 10)
        for order in during:
            answer = pipeline.post(http, pipeline.sale(order))
            assert answer.status_code == 200, answer.text
        redis_proxy.up()
        after = _orders("redis-back", 3)
        for order in after:
            assert pipeline.post(http, pipeline.sale(order)).status_code == 200
    account = pipeline.ledger.settle(pipeline.meta, 120)
    assert_clean(account)
    assert len(account.delivered) == 16
    assert "accepting webhooks without a limit" in ingestion.logs()  # it failed open


#: Each class Meta answers with, as the fake renders it (EXTERNAL-APIS.md).
META_ERRORS: list[tuple[str, dict[str, Any]]] = [
    ("http_500", {}),
    ("transient", {}),
    ("rate_limit", {"code": 17}),
    ("rate_limit", {"code": 80006}),
    ("token_expired", {}),
]


def test_each_meta_error_class_ends_with_every_sale_at_meta_once(pipeline: Pipeline) -> None:
    """For each class in turn, Meta answers two requests with that error, then recovers: the
    events wait (retry ladder, or parked behind the breaker until its probe) and each reaches
    Meta once. One pipeline for all classes: a class's sales settle before the next begins."""
    served = 0
    for fault, fields in META_ERRORS:
        pipeline.meta.add_fault(fault, count=2, **fields)
        orders = _orders(fault, 4)
        with httpx.Client(timeout=30) as http:
            for order in orders:
                assert pipeline.post(http, pipeline.sale(order)).status_code == 200

        def delivered(account: Account) -> bool:
            return len(account.delivered) + len(account.dead) == len(pipeline.ledger.acknowledged)

        account = pipeline.ledger.settle(pipeline.meta, 150, until=delivered)
        assert_clean(account)
        requests = pipeline.meta.requests(pixel_id=pipeline.ledger.pixel_id)
        failed = sum(1 for r in requests if r["status"] != 200)
        assert failed == served + 2, f"{fault} {fields}: the fault was served twice"
        served = failed
    assert len(account.delivered) == 4 * len(META_ERRORS)
