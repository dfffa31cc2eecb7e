"""DispatcherService's read models for the console: destinations needing attention (breaker and
dead letters), one tenant's or every tenant's, the coverage of each customer-information
parameter in the server events stored for Meta, and a page of events' states in one call. Real
PostgreSQL and a real gRPC server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from trackai.dispatcher.v1 import dispatcher_service_pb2 as pb
from trackai.dispatcher.v1 import dispatcher_service_pb2_grpc as pb_grpc
from trackai.matcher.v1 import events_pb2 as matcher_pb
from trackai_dispatcher.adapters.query_store import PostgresDeadLetterStore, PostgresReader
from trackai_dispatcher.bootstrap import DISPATCHER_SERVICE
from trackai_dispatcher.entrypoints.grpc_access import POLICY
from trackai_dispatcher.entrypoints.grpc_dispatcher import DispatcherServicer
from trackai_dispatcher.service_layer.dlq import DeadLetters
from trackai_dispatcher.service_layer.queries import Queries
from trackai_kit.grpc import client_channel, local_dev_callers, local_dev_token, start_grpc_server
from trackai_kit.settings import GrpcSettings

if TYPE_CHECKING:
    from trackai.dispatcher.v1.dispatcher_service_pb2_grpc import DispatcherServiceAsyncStub

pytestmark = pytest.mark.integration
CONSOLE = local_dev_token("console")
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
async def stub(db: asyncpg.Pool) -> AsyncIterator[DispatcherServiceAsyncStub]:
    # Reads only: the replay publisher is never reached.
    servicer = DispatcherServicer(
        Queries(PostgresReader(db)),
        DeadLetters(PostgresDeadLetterStore(db), None),  # type: ignore[arg-type]
    )
    server = await start_grpc_server(
        GrpcSettings(port=0, callers=local_dev_callers()),
        partial(pb_grpc.add_DispatcherServiceServicer_to_server, servicer),
        [DISPATCHER_SERVICE],
        POLICY,
    )
    channel = client_channel(f"127.0.0.1:{server.port}", CONSOLE)
    try:
        async_stub: DispatcherServiceAsyncStub = pb_grpc.DispatcherServiceStub(channel)
        yield async_stub
    finally:
        await channel.close()
        await server.stop(0)


async def _dispatch(
    db: asyncpg.Pool,
    tenant: str,
    pixel: str,
    *,
    state: str = "sent",
    event_time: datetime = NOW,
    user_data: Mapping[str, object] | None = None,
    funnel: str | None = None,
    stage: str | None = None,
) -> str:
    event = uuid.uuid4().hex + uuid.uuid4().hex
    await db.execute(
        """
        INSERT INTO dispatches (event_id, tenant_id, pixel_id, event_name, event_time, state,
                                payload, reason, sent_at, funnel_id, match_stage, conversion_id)
        VALUES ($1, $2, $3, 'Purchase', $4, $5, $6::jsonb, $7, $8, $9, $10, $11)
        """,
        event,
        tenant,
        pixel,
        event_time,
        state,
        {"event_name": "Purchase", "user_data": dict(user_data or {})},
        "meta_permanent" if state == "dead" else None,
        NOW if state == "sent" else None,
        funnel,
        stage,
        f"conv-{event}",
    )
    return event


async def _breaker(db: asyncpg.Pool, tenant: str, pixel: str, state: str, failures: int) -> None:
    await db.execute(
        """
        INSERT INTO breaker_states (tenant_id, pixel_id, state, consecutive_failures, opened_at,
                                    probe_after, last_code, reason)
        VALUES ($1, $2, $3, $4, $5, $6, 190, 'Error validating access token')
        """,
        tenant,
        pixel,
        state,
        failures,
        NOW if state != "closed" else None,
        NOW + timedelta(seconds=30) if state == "open" else None,
    )


async def test_destinations_needing_attention_per_tenant_and_for_every_tenant(
    db: asyncpg.Pool, stub: DispatcherServiceAsyncStub
) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    await _breaker(db, a, "111", "open", 10)
    await _dispatch(db, a, "111", state="parked")
    await _dispatch(db, a, "222", state="dead")
    await _dispatch(db, a, "222", state="dead")
    await _dispatch(db, a, "333")  # delivering normally: absent
    await _breaker(db, a, "333", "closed", 0)
    await _breaker(db, b, "444", "half_open", 3)

    mine = (
        await stub.ListDestinationHealth(pb.ListDestinationHealthRequest(tenant_id=a))
    ).destinations
    assert [(d.pixel_id, d.breaker_state, d.dead_letters) for d in mine] == [
        ("111", pb.BREAKER_STATE_OPEN, 0),
        ("222", pb.BREAKER_STATE_CLOSED, 2),
    ]
    assert mine[0].last_code == 190
    assert mine[0].reason == "Error validating access token"
    assert mine[0].probe_time.ToDatetime(UTC) == NOW + timedelta(seconds=30)
    assert {d.tenant_id for d in mine} == {a}

    every = (await stub.ListDestinationHealth(pb.ListDestinationHealthRequest())).destinations
    assert {(d.tenant_id, d.pixel_id) for d in every} >= {(a, "111"), (a, "222"), (b, "444")}
    assert (a, "333") not in {(d.tenant_id, d.pixel_id) for d in every}

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ListDestinationHealth(pb.ListDestinationHealthRequest(tenant_id="x"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _range(start: datetime, end: datetime) -> dict[str, Timestamp]:
    first, last = Timestamp(), Timestamp()
    first.FromDatetime(start)
    last.FromDatetime(end)
    return {"start_time": first, "end_time": last}


async def test_parameter_coverage_counts_the_events_carrying_each_parameter(
    db: asyncpg.Pool, stub: DispatcherServiceAsyncStub
) -> None:
    tenant, other = str(uuid.uuid4()), str(uuid.uuid4())
    full = {"em": ["a" * 64], "ph": ["b" * 64], "fbc": "fb.1.1.x", "client_ip_address": "1.2.3.4"}
    await _dispatch(db, tenant, "111", user_data=full)
    await _dispatch(db, tenant, "111", user_data={"em": ["c" * 64], "fbp": "fb.1.2.3"})
    await _dispatch(db, tenant, "111", state="dead", user_data={"client_user_agent": "UA"})
    await _dispatch(db, tenant, "111", event_time=NOW - timedelta(days=9), user_data=full)
    await _dispatch(db, other, "999", user_data=full)

    answer = await stub.GetParameterCoverage(
        pb.GetParameterCoverageRequest(
            tenant_id=tenant, **_range(NOW - timedelta(days=7), NOW + timedelta(seconds=1))
        )
    )
    assert answer.events == 3
    assert {p.parameter: p.events for p in answer.parameters} == {
        "em": 2,
        "ph": 1,
        "fbc": 1,
        "fbp": 1,
        "client_ip_address": 1,
        "client_user_agent": 1,
    }

    empty = await stub.GetParameterCoverage(
        pb.GetParameterCoverageRequest(
            tenant_id=str(uuid.uuid4()), **_range(NOW - timedelta(days=7), NOW)
        )
    )
    assert (empty.events, list(empty.parameters)) == (0, [])

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetParameterCoverage(
            pb.GetParameterCoverageRequest(tenant_id=tenant, **_range(NOW, NOW))
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_batch_event_states_answer_a_page_in_one_call(
    db: asyncpg.Pool, stub: DispatcherServiceAsyncStub
) -> None:
    tenant, other = str(uuid.uuid4()), str(uuid.uuid4())
    sent = await _dispatch(db, tenant, "111")
    dead = await _dispatch(db, tenant, "111", state="dead")
    elsewhere = await _dispatch(db, other, "111")
    answer = await stub.BatchGetEventStates(
        pb.BatchGetEventStatesRequest(
            tenant_id=tenant, event_ids=[sent, dead, elsewhere, "0" * 64, "not-an-event-id", sent]
        )
    )
    states = {e.event_id: e.state for e in answer.events}
    assert states == {sent: pb.EVENT_STATE_SENT, dead: pb.EVENT_STATE_DEAD}
    one = await stub.GetEventState(pb.GetEventStateRequest(tenant_id=tenant, event_id=dead))
    assert next(e for e in answer.events if e.event_id == dead) == one.event

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.BatchGetEventStates(
            pb.BatchGetEventStatesRequest(tenant_id=tenant, event_ids=[sent] * 501)
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_event_states_page_a_tenants_events_by_state_newest_first(
    db: asyncpg.Pool, stub: DispatcherServiceAsyncStub
) -> None:
    tenant, other = str(uuid.uuid4()), str(uuid.uuid4())
    funnel = str(uuid.uuid4())
    at = [NOW - timedelta(minutes=m) for m in range(6)]
    dead_new = await _dispatch(db, tenant, "1", state="dead", event_time=at[0], funnel=funnel)
    await _dispatch(db, tenant, "1", state="sent", event_time=at[1])
    retrying = await _dispatch(
        db, tenant, "1", state="retrying", event_time=at[2], stage="MATCH_STAGE_PROBABILISTIC"
    )
    parked = await _dispatch(db, tenant, "1", state="parked", event_time=at[3])
    dead_old = await _dispatch(db, tenant, "1", state="dead", event_time=at[4])
    await _dispatch(db, other, "1", state="dead", event_time=at[0])
    page = partial(pb.ListEventStatesRequest, tenant_id=tenant)

    first = await stub.ListEventStates(page(states=[pb.EVENT_STATE_DEAD], page_size=1))
    assert [e.event_id for e in first.events] == [dead_new]
    assert first.events[0].conversion_id == f"conv-{dead_new}"
    assert first.events[0].event_time.ToDatetime(UTC) == at[0]
    rest = await stub.ListEventStates(
        page(states=[pb.EVENT_STATE_DEAD], page_size=1, page_token=first.next_page_token)
    )
    assert ([e.event_id for e in rest.events], rest.next_page_token) == ([dead_old], "")

    failing = await stub.ListEventStates(
        page(states=[pb.EVENT_STATE_RETRYING, pb.EVENT_STATE_PARKED])
    )
    assert [(e.event_id, e.state) for e in failing.events] == [
        (retrying, pb.EVENT_STATE_RETRYING),
        (parked, pb.EVENT_STATE_PARKED),
    ]
    by_funnel = await stub.ListEventStates(page(states=[pb.EVENT_STATE_DEAD], funnel_id=funnel))
    assert [e.event_id for e in by_funnel.events] == [dead_new]
    probabilistic = await stub.ListEventStates(
        page(
            states=[pb.EVENT_STATE_RETRYING, pb.EVENT_STATE_DEAD],
            stages=[matcher_pb.MATCH_STAGE_PROBABILISTIC],
        )
    )
    assert [e.event_id for e in probabilistic.events] == [retrying]
    recent = await stub.ListEventStates(
        page(states=[pb.EVENT_STATE_DEAD], **_range(at[1], NOW + timedelta(seconds=1)))
    )
    assert [e.event_id for e in recent.events] == [dead_new]

    for bad in (
        page(),
        page(states=[pb.EVENT_STATE_DEAD], funnel_id="not-a-funnel"),
        page(states=[pb.EVENT_STATE_DEAD], page_token="bm90IGEgdG9rZW4="),
        page(states=[pb.EVENT_STATE_DEAD], **_range(NOW, NOW)),
        pb.ListEventStatesRequest(tenant_id="x", states=[pb.EVENT_STATE_DEAD]),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ListEventStates(bad)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
