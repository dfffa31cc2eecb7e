"""MatcherService on a real gRPC server, and `trackai matches export` against it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest

from bench.traffic import ANDROID, EMAIL
from bench.traffic import conversion_event as conversion
from bench.traffic import hit_event as hit
from trackai.ingestion.v1 import events_pb2 as ingest
from trackai.matcher.v1 import events_pb2 as mpb
from trackai.matcher.v1 import matcher_service_pb2 as pb
from trackai.matcher.v1 import matcher_service_pb2_grpc as pb_grpc
from trackai_kit.grpc import client_channel, local_dev_callers, local_dev_token, start_grpc_server
from trackai_kit.identity import event_id
from trackai_kit.settings import GrpcSettings
from trackai_matcher.adapters.reports import PostgresMatchReports
from trackai_matcher.bootstrap import MATCHER_SERVICE
from trackai_matcher.entrypoints.grpc_access import POLICY
from trackai_matcher.entrypoints.grpc_matcher import MatcherServicer
from trackai_matcher.service_layer.queries import MatchQueries

pytestmark = pytest.mark.integration
TOKEN = local_dev_token("operator")
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)
TRACKAI = shutil.which("trackai", path=str(Path(sys.executable).parent)) or "trackai"


@pytest.fixture
async def api(matcher: Any, consumer: Any) -> AsyncIterator[tuple[Any, str, str]]:
    tenant = matcher.registry.add_tenant()
    events = [
        hit(
            tenant,
            "sess-grpc-00001",
            NOW - dt.timedelta(hours=1),
            kind=ingest.HIT_TYPE_LEAD,
            em=EMAIL,
        ),
        hit(
            tenant, "sess-grpc-00002", NOW - dt.timedelta(minutes=30), ip="200.10.10.10", ua=ANDROID
        ),
        conversion(tenant, "ORD-DET", NOW),
        conversion(tenant, "ORD-PROB", NOW, em="", ip="200.10.10.10", ua=ANDROID),
        conversion(tenant, "ORD-NONE", NOW - dt.timedelta(days=1), em="d" * 64, gateway="hotmart"),
    ]
    await matcher.feed(consumer, *events)
    server = await start_grpc_server(
        GrpcSettings(port=0, callers=local_dev_callers()),
        partial(
            pb_grpc.add_MatcherServiceServicer_to_server,
            MatcherServicer(MatchQueries(PostgresMatchReports(matcher.pool))),
        ),
        [MATCHER_SERVICE],
        POLICY,
    )
    channel = client_channel(f"127.0.0.1:{server.port}", TOKEN)
    try:
        yield pb_grpc.MatcherServiceStub(channel), tenant, f"127.0.0.1:{server.port}"
    finally:
        await channel.close()
        await server.stop(0)


async def test_list_explain_review_and_stats(api: tuple[Any, str, str]) -> None:
    stub, tenant, _ = api
    first = await stub.ListMatches(pb.ListMatchesRequest(tenant_id=tenant, page_size=2))
    assert len(first.matches) == 2 and first.next_page_token
    rest = await stub.ListMatches(
        pb.ListMatchesRequest(tenant_id=tenant, page_size=2, page_token=first.next_page_token)
    )
    assert not rest.next_page_token
    by_order = {m.order_id: m for m in [*first.matches, *rest.matches]}
    assert by_order["ORD-DET"].stage == mpb.MATCH_STAGE_DETERMINISTIC
    assert by_order["ORD-PROB"].stage == mpb.MATCH_STAGE_PROBABILISTIC
    assert by_order["ORD-NONE"].stage == mpb.MATCH_STAGE_NONE
    assert by_order["ORD-NONE"].event_id == event_id(tenant, "hotmart", "ORD-NONE", "Purchase")

    semi_only = await stub.ListMatches(
        pb.ListMatchesRequest(tenant_id=tenant, stages=[mpb.MATCH_STAGE_PROBABILISTIC])
    )
    assert [m.order_id for m in semi_only.matches] == ["ORD-PROB"]
    hotmart = await stub.ListMatches(pb.ListMatchesRequest(tenant_id=tenant, gateway="hotmart"))
    assert [m.order_id for m in hotmart.matches] == ["ORD-NONE"]
    review = await stub.ListReviewMatches(pb.ListReviewMatchesRequest(tenant_id=tenant))
    assert {m.order_id for m in review.matches} == {"ORD-PROB", "ORD-NONE"}

    explained = await stub.ExplainMatch(
        pb.ExplainMatchRequest(tenant_id=tenant, event_id=by_order["ORD-PROB"].event_id)
    )
    e = explained.explanation
    assert e.matched.session_id == "sess-grpc-00002" and e.threshold == pytest.approx(0.97)
    assert {ev.feature for ev in e.matched.evidence} >= {"ip", "user_agent", "time_gap"}
    by_conversion = await stub.ExplainMatch(
        pb.ExplainMatchRequest(tenant_id=tenant, conversion_id=by_order["ORD-DET"].conversion_id)
    )
    assert by_conversion.explanation.summary.order_id == "ORD-DET"

    day = NOW.date()
    stats = await stub.GetMatchStats(
        pb.GetMatchStatsRequest(
            tenant_id=tenant,
            start_day=(day - dt.timedelta(days=2)).isoformat(),
            end_day=day.isoformat(),
        )
    )
    assert [d.conversions for d in stats.days] == [0, 1, 2]
    assert (stats.days[2].deterministic, stats.days[2].probabilistic) == (1, 1)
    assert stats.days[1].unmatched == 1 and stats.days[2].emq_average > 0


async def test_matches_of_one_funnel(api: tuple[Any, str, str], matcher: Any) -> None:
    """The events page's funnel filter: the funnel an event was routed to (the sale's, else its
    click's) is the registry's, which the matcher's list filters on."""
    stub, tenant, _ = api
    funnel = str(uuid.uuid4())
    routed = event_id(tenant, "kiwify", "ORD-PROB", "Purchase")
    await matcher.pool.execute(
        "UPDATE matcher.dedupe_registry SET funnel_id = $1 WHERE event_id = $2", funnel, routed
    )
    mine = await stub.ListMatches(pb.ListMatchesRequest(tenant_id=tenant, funnel_id=funnel))
    assert [m.event_id for m in mine.matches] == [routed]
    probabilistic = await stub.ListMatches(
        pb.ListMatchesRequest(
            tenant_id=tenant, funnel_id=funnel, stages=[mpb.MATCH_STAGE_DETERMINISTIC]
        )
    )
    assert list(probabilistic.matches) == []
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await stub.ListMatches(pb.ListMatchesRequest(tenant_id=tenant, funnel_id="funil-1"))
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_errors_map_to_status_codes(api: tuple[Any, str, str]) -> None:
    stub, tenant, _ = api
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.ExplainMatch(pb.ExplainMatchRequest(tenant_id=tenant, event_id="0" * 64))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    other_tenant = "11111111-2222-4333-8444-555555555555"
    listed = await stub.ListMatches(pb.ListMatchesRequest(tenant_id=other_tenant))
    assert list(listed.matches) == []
    for bad in (
        pb.ListMatchesRequest(tenant_id="acme"),
        pb.ListMatchesRequest(tenant_id=tenant, page_token="garbage"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await stub.ListMatches(bad)
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as backwards:
        await stub.GetMatchStats(
            pb.GetMatchStatsRequest(tenant_id=tenant, start_day="2026-02-02", end_day="2026-02-01")
        )
    assert backwards.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_cli_export_prints_one_json_object_per_conversion(api: tuple[Any, str, str]) -> None:
    _, tenant, target = api
    env = {**os.environ, "MATCHER_GRPC_TARGET": target, "GRPC_CLIENT_TOKEN": TOKEN}
    proc = await asyncio.create_subprocess_exec(
        TRACKAI,
        "matches",
        "export",
        "--tenant",
        tenant,
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    rows = [json.loads(line) for line in out.decode().splitlines()]
    by_order = {r["order_id"]: r for r in rows}
    assert set(by_order) == {"ORD-DET", "ORD-PROB", "ORD-NONE"}
    det, none = by_order["ORD-DET"], by_order["ORD-NONE"]
    assert det["stage"] == "deterministic" and det["session_id"] == "sess-grpc-00001"
    assert det["score"] == 1.0 and det["event_name"] == "Purchase" and det["gateway"] == "kiwify"
    assert det["event_id"] == event_id(tenant, "kiwify", "ORD-DET", "Purchase")
    assert none["stage"] == "none" and none["session_id"] is None and none["score"] is None
    assert by_order["ORD-PROB"]["stage"] == "probabilistic"
    assert all(0 <= r["emq"] <= 10 for r in rows)


async def test_batch_get_matches_answers_a_page_in_one_call(api: tuple[Any, str, str]) -> None:
    stub, tenant, _ = api
    listed = await stub.ListMatches(pb.ListMatchesRequest(tenant_id=tenant))
    ids = [m.conversion_id for m in listed.matches]
    assert len(ids) == 3 and all(ids)
    unknown = str(uuid.uuid4())
    batch = await stub.BatchGetMatches(
        pb.BatchGetMatchesRequest(tenant_id=tenant, conversion_ids=[*ids, unknown, "not-a-uuid"])
    )
    found = {m.conversion_id: m.summary for m in batch.matches}
    assert set(found) == set(ids)
    for conversion_id in ids:
        one = await stub.ExplainMatch(
            pb.ExplainMatchRequest(tenant_id=tenant, conversion_id=conversion_id)
        )
        assert found[conversion_id] == one.explanation.summary
    # Another tenant's conversions are not there for this one.
    other = await stub.BatchGetMatches(
        pb.BatchGetMatchesRequest(tenant_id=str(uuid.uuid4()), conversion_ids=ids)
    )
    assert list(other.matches) == []
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.BatchGetMatches(
            pb.BatchGetMatchesRequest(tenant_id=tenant, conversion_ids=[unknown] * 501)
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
