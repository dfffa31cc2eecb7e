"""A sale handled while its session's hit is still in flight waits for the hit instead of being
matched without it: the consumer tries it again through its delay queues (``SESSION_WAITS``
times), then matches it without the session if the hit never comes. Real RabbitMQ, the kit's
retries through delay queues, real PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from bench.traffic import conversion_event, hit_event
from trackai_kit.postgres import create_pool
from trackai_kit.settings import PostgresSettings
from trackai_matcher.service_layer.ingest import SESSION_WAITS

from .stack import NOW, POLICY, purchase_reaches_dispatch, running, wait_until

pytestmark = pytest.mark.integration


async def _match(pool: Any, order: str) -> Any:
    return await pool.fetchrow(
        "SELECT stage, method, session_id FROM matcher.matches WHERE order_id = $1", order
    )


async def test_sale_before_its_sessions_hit_waits_and_matches_the_session(
    matcher: Any, make_service: Any, amqp_url: str, amqp_prefix: str
) -> None:
    tenant = matcher.registry.add_tenant()
    session = "taInFlight0123456789ab"
    pool = await create_pool(
        PostgresSettings(url=matcher.database_url, pool_max=2), schema="matcher"
    )
    try:
        async with running(make_service, amqp_url, amqp_prefix, pool) as stack:
            # The sale first; the visit that made it arrives just after (the race).
            await stack.publish(conversion_event(tenant, "ORD-F1", NOW, sck=session))
            await asyncio.sleep(0.1)
            await stack.publish(hit_event(tenant, session, NOW - dt.timedelta(minutes=20)))
            await purchase_reaches_dispatch(stack)
            match = await _match(pool, "ORD-F1")
            assert (match["stage"], match["method"], match["session_id"]) == (
                "deterministic",
                "sck",
                session,
            )
    finally:
        await pool.close()


async def test_sale_whose_session_never_comes_is_matched_without_it(
    matcher: Any, make_service: Any, amqp_url: str, amqp_prefix: str
) -> None:
    tenant = matcher.registry.add_tenant()
    pool = await create_pool(
        PostgresSettings(url=matcher.database_url, pool_max=2), schema="matcher"
    )
    try:
        async with running(make_service, amqp_url, amqp_prefix, pool) as stack:
            loop = asyncio.get_running_loop()
            started = loop.time()
            await stack.publish(
                conversion_event(tenant, "ORD-F2", NOW, sck="taNeverSeen0123456789a")
            )
            await purchase_reaches_dispatch(stack)
            waited = loop.time() - started
            # It waited its SESSION_WAITS delays, then went without the session: one match,
            # one conversion, nothing dead.
            assert waited >= sum(POLICY.delays_ms[:SESSION_WAITS]) / 1000
            match = await _match(pool, "ORD-F2")
            assert match["stage"] == "none"
            assert match["session_id"] is None

            async def logged_once() -> bool:
                rows = await pool.fetchval(
                    "SELECT count(*) FROM matcher.conversion_log WHERE order_id = 'ORD-F2'"
                )
                return bool(rows == 1)

            await wait_until(logged_once, timeout=5)
    finally:
        await pool.close()
