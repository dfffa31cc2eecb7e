"""DispatcherService on a real gRPC server: dead letters listed with filters, replayed (one, a
filter, all) idempotently and within the 7-day limit, with an audit of who replayed; attempts and
event state; and the `trackai dlq` command against it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from trackai.dispatcher.v1 import dispatcher_service_pb2 as pb
from trackai.dispatcher.v1 import dispatcher_service_pb2_grpc as pb_grpc
from trackai_dispatcher.adapters.broker import DispatchPublisher
from trackai_dispatcher.adapters.query_store import PostgresDeadLetterStore, PostgresReader
from trackai_dispatcher.bootstrap import DISPATCHER_SERVICE
from trackai_dispatcher.entrypoints.grpc_access import POLICY
from trackai_dispatcher.entrypoints.grpc_dispatcher import DispatcherServicer
from trackai_dispatcher.service_layer.dlq import DeadLetters
from trackai_dispatcher.service_layer.queries import Queries
from trackai_kit.amqp import AmqpClient
from trackai_kit.grpc import (
    GrpcServer,
    client_channel,
    local_dev_callers,
    local_dev_token,
    start_grpc_server,
)
from trackai_kit.settings import GrpcSettings
from trackai_sandbox.testing import MetaSandboxClient

from .conftest import (
    PIXEL,
    Registry,
    Start,
    dispatch_request,
    publish,
    wait_states,
)

pytestmark = pytest.mark.integration
OPERATOR = local_dev_token("operator")


@pytest.fixture
async def api(
    db: asyncpg.Pool, broker: AmqpClient
) -> AsyncIterator[tuple[pb_grpc.DispatcherServiceStub, GrpcServer]]:
    servicer = DispatcherServicer(
        Queries(PostgresReader(db)),
        DeadLetters(PostgresDeadLetterStore(db), DispatchPublisher(broker)),
    )
    server = await start_grpc_server(
        GrpcSettings(port=0, callers=local_dev_callers()),
        partial(pb_grpc.add_DispatcherServiceServicer_to_server, servicer),
        [DISPATCHER_SERVICE],
        POLICY,
    )
    channel = client_channel(f"127.0.0.1:{server.port}", OPERATOR)
    try:
        yield pb_grpc.DispatcherServiceStub(channel), server
    finally:
        await channel.close()
        await server.stop(0)


async def cli(server: GrpcServer, *args: str) -> subprocess.CompletedProcess[str]:
    # In a thread: the gRPC server answering it runs on this test's event loop.
    env = {
        **os.environ,
        "DISPATCHER_GRPC_TARGET": f"127.0.0.1:{server.port}",
        "GRPC_CLIENT_TOKEN": OPERATOR,
    }
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "trackai_cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def test_dead_letters_list_replay_and_audit(
    api: tuple[pb_grpc.DispatcherServiceStub, GrpcServer],
    registry: Registry,
    meta: MetaSandboxClient,
    broker: AmqpClient,
    db: asyncpg.Pool,
    start_consumer: Start,
) -> None:
    stub, server = api
    tenant = registry.servicer.add_tenant()
    other = registry.servicer.add_tenant()
    now = int(time.time())
    meta.freeze_clock(now - 600)  # events stamped "now" are refused by Meta (in its future)
    refused = [dispatch_request(tenant, f"refused-{i}", event_time=now) for i in range(2)]
    invalid = dispatch_request(
        tenant, "invalid", user_data={"em": ["x"], "client_user_agent": "UA"}
    )
    fine = dispatch_request(tenant, "fine", event_time=now - 3600)
    elsewhere = dispatch_request(other, "elsewhere", event_time=now)
    await publish(broker, *refused, invalid, fine, elsewhere)
    await start_consumer()
    await wait_states(db, tenant, 4, {"sent", "dead"})
    await wait_states(db, other, 1, {"dead"})

    # List, with filters.
    listed = await stub.ListDeadLetters(
        pb.ListDeadLettersRequest(filter=pb.DeadLetterFilter(tenant_id=tenant))
    )
    assert {d.event_id for d in listed.dead_letters} == {
        *(r.event.event_id for r in refused),
        invalid.event.event_id,
    }
    assert all(d.replayable and d.attempts >= 0 for d in listed.dead_letters)
    by_reason = await stub.ListDeadLetters(
        pb.ListDeadLettersRequest(
            filter=pb.DeadLetterFilter(tenant_id=tenant, reason="meta_rejected"), page_size=1
        )
    )
    assert len(by_reason.dead_letters) == 1 and by_reason.next_page_token
    assert by_reason.dead_letters[0].meta_code == 100
    page_two = await stub.ListDeadLetters(
        pb.ListDeadLettersRequest(
            filter=pb.DeadLetterFilter(tenant_id=tenant, reason="meta_rejected"),
            page_size=1,
            page_token=by_reason.next_page_token,
        )
    )
    assert {by_reason.dead_letters[0].event_id, page_two.dead_letters[0].event_id} == {
        r.event.event_id for r in refused
    }
    past = Timestamp()
    past.FromDatetime(datetime.now(UTC) - timedelta(hours=1))
    assert not (
        await stub.ListDeadLetters(
            pb.ListDeadLettersRequest(filter=pb.DeadLetterFilter(end_time=past))
        )
    ).dead_letters
    shown = await cli(
        server, "dlq", "list", "--tenant", tenant, "--reason", "invalid_event", "--json"
    )
    assert shown.returncode == 0, shown.stderr
    assert [d["event_id"] for d in json.loads(shown.stdout)] == [invalid.event.event_id]

    # Replay a filter once Meta accepts them again: delivered; a second replay finds nothing.
    meta.freeze_clock(None)
    replay = await stub.ReplayDeadLetters(
        pb.ReplayDeadLettersRequest(
            filter=pb.DeadLetterFilter(tenant_id=tenant, reason="meta_rejected"),
            requested_by="ops-ana",
            note="Meta clock skew fixed",
        )
    )
    assert (replay.selected, replay.replayed, replay.expired) == (2, 2, 0)
    await wait_states(db, tenant, 3, {"sent"})
    again = await stub.ReplayDeadLetters(
        pb.ReplayDeadLettersRequest(
            filter=pb.DeadLetterFilter(tenant_id=tenant, reason="meta_rejected"),
            requested_by="ops-ana",
        )
    )
    assert (again.selected, again.replayed) == (0, 0)
    sent_one = await stub.ReplayDeadLetters(
        pb.ReplayDeadLettersRequest(event_id=refused[0].event.event_id, requested_by="ops-ana")
    )
    assert (sent_one.replayed, sent_one.skipped_already_sent) == (0, 1)
    assert {c["count"] for c in meta.event_counts(pixel_id=PIXEL)} == {1}

    # Past the 7-day limit: replay marks it expired instead of sending it.
    await db.execute(
        "UPDATE dispatches SET event_time = now() - interval '8 days' WHERE event_id = $1",
        invalid.event.event_id,
    )
    replayed_cli = await cli(server, "dlq", "replay", "--all", "--by", "ops-bruno", "--json")
    assert replayed_cli.returncode == 0, replayed_cli.stderr
    summary = json.loads(replayed_cli.stdout)
    assert summary["expired"] == 1 and summary["replayed"] == 1  # `elsewhere` replayed
    assert (
        await db.fetchval(
            "SELECT state FROM dispatches WHERE event_id = $1", invalid.event.event_id
        )
        == "expired"
    )
    audit = await db.fetch(
        "SELECT requested_by, scope, replayed, skipped_sent, skipped_expired, finished_at"
        " FROM dlq_replays ORDER BY requested_at"
    )
    assert [(a["requested_by"], a["scope"]) for a in audit] == [
        ("ops-ana", "filter"),
        ("ops-ana", "filter"),
        ("ops-ana", "one"),
        ("ops-bruno", "all"),
    ]
    assert all(a["finished_at"] is not None for a in audit)
    items = await db.fetch("SELECT outcome FROM dlq_replay_items")
    assert sorted(i["outcome"] for i in items) == [
        "replayed",
        "replayed",
        "replayed",
        "skipped_expired",
        "skipped_sent",
    ]

    # Event state and attempts of a replayed event; another tenant's event is not found.
    state = await stub.GetEventState(
        pb.GetEventStateRequest(tenant_id=tenant, event_id=refused[0].event.event_id)
    )
    assert state.event.state == pb.EVENT_STATE_SENT and state.event.attempts >= 2
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetEventState(
            pb.GetEventStateRequest(tenant_id=other, event_id=refused[0].event.event_id)
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    attempts = await stub.ListAttempts(
        pb.ListAttemptsRequest(tenant_id=tenant, event_id=refused[0].event.event_id)
    )
    outcomes = [(a.attempt_number, a.outcome) for a in attempts.attempts]
    assert outcomes[0] == (len(outcomes), pb.ATTEMPT_OUTCOME_SUCCEEDED)
    assert pb.ATTEMPT_OUTCOME_PERMANENT in {o for _, o in outcomes}
    assert all(a.batch_id and a.http_status for a in attempts.attempts)

    # An empty filter is refused: replaying everything needs an explicit `all`.
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await stub.ReplayDeadLetters(
            pb.ReplayDeadLettersRequest(filter=pb.DeadLetterFilter(), requested_by="ops")
        )
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_replay_is_denied_to_services_and_unknown_tokens(
    api: tuple[pb_grpc.DispatcherServiceStub, GrpcServer],
) -> None:
    _, server = api
    target = f"127.0.0.1:{server.port}"
    for token, code in (
        (local_dev_token("ingestion"), grpc.StatusCode.PERMISSION_DENIED),
        ("not-a-token", grpc.StatusCode.UNAUTHENTICATED),
    ):
        async with client_channel(target, token) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await pb_grpc.DispatcherServiceStub(channel).ReplayDeadLetters(
                    pb.ReplayDeadLettersRequest(all=True, requested_by="intruder")
                )
            assert refused.value.code() == code
