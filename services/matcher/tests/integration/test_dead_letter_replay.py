"""A purchase the matcher cannot process goes to ``ingest-events.dlq`` at once (a definitive gRPC
refusal is not retried forever), `trackai dlq list --queue ingest-events` shows it with its
x-death reason, and `trackai dlq replay --queue ingest-events` brings it back once the cause is
fixed: it ends in ``capi-dispatch``, and a second replay finds nothing to do."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest

from bench.traffic import conversion_event
from trackai_cli.main import main as trackai
from trackai_kit.postgres import create_pool
from trackai_kit.settings import PostgresSettings
from trackai_kit.topology import CAPI_DISPATCH, INGEST_EVENTS, dlq_name

from .stack import NOW, purchase_reaches_dispatch, running, sale_with_a_click, wait_until

pytestmark = pytest.mark.integration


async def test_refused_registry_dead_letters_and_replay_delivers_once(
    matcher: Any,
    make_service: Any,
    amqp_url: str,
    amqp_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AMQP_URL", amqp_url)
    monkeypatch.setenv("AMQP_PREFIX", amqp_prefix)
    tenant = matcher.registry.add_tenant()
    pool = await create_pool(
        PostgresSettings(url=matcher.database_url, pool_max=2), schema="matcher"
    )
    try:
        async with running(make_service, amqp_url, amqp_prefix, pool) as stack:
            await sale_with_a_click(stack, tenant, "sess-dlq-1", "ORD-D1")
            # The registry no longer lets the matcher in (a revoked identity, say): a
            # definitive answer, so the purchase is dead-lettered instead of looping.
            matcher.registry.refuse = grpc.StatusCode.PERMISSION_DENIED
            order = conversion_event(tenant, "ORD-D1", NOW, sck="sess-dlq-1")
            await stack.publish(order)

            async def dead_lettered() -> bool:
                return await stack.depth(dlq_name(INGEST_EVENTS)) == 1

            await wait_until(dead_lettered, timeout=10)
            assert await stack.depth(CAPI_DISPATCH) == 0

            capsys.readouterr()
            argv = ["dlq", "list", "--queue", "ingest-events", "--json"]
            assert await asyncio.to_thread(trackai, argv) == 0
            (listed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
            assert listed["message_id"] == order.message_id
            assert listed["reason"] == "rejected"
            assert listed["from_queue"] == f"{amqp_prefix}{INGEST_EVENTS}"
            # Listing returned the message: it is still there.
            assert await stack.depth(dlq_name(INGEST_EVENTS)) == 1

            matcher.registry.refuse = None
            replay = ["dlq", "replay", "--queue", "ingest-events", "--by", "ana"]
            assert (
                await asyncio.to_thread(trackai, [*replay, "--message-id", order.message_id]) == 0
            )
            assert "replayed 1 message(s)" in capsys.readouterr().out
            await purchase_reaches_dispatch(stack)

            assert await asyncio.to_thread(trackai, [*replay, "--all"]) == 0
            assert "replayed 0 message(s)" in capsys.readouterr().out
            logged = await stack.pool.fetchval(
                "SELECT count(*) FROM matcher.conversion_log WHERE order_id = 'ORD-D1'"
            )
            assert logged == 1
    finally:
        await pool.close()
