"""gRPC servicer of MatcherService: decode, call the read use cases, encode."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from trackai.matcher.v1 import matcher_service_pb2 as pb
from trackai.matcher.v1 import matcher_service_pb2_grpc as pb_grpc
from trackai_matcher.domain.model import Stage
from trackai_matcher.service_layer.events import STAGES
from trackai_matcher.service_layer.ports import DayStats, SummaryRow
from trackai_matcher.service_layer.queries import InvalidArgument, MatchQueries, NotFound

T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]
_STAGE_OF = {value: stage for stage, value in STAGES.items()}


def _ts(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _bound(request: Any, name: str) -> dt.datetime | None:
    return getattr(request, name).ToDatetime(tzinfo=dt.UTC) if request.HasField(name) else None


def summary(row: SummaryRow) -> pb.MatchSummary:
    return pb.MatchSummary(
        conversion_id=row.conversion_id or "",
        order_id=row.order_id,
        gateway=row.gateway,
        event_id=row.event_id,
        event_name=row.event_name,
        stage=STAGES[row.stage],
        session_id=row.session_id or "",
        score=row.score or 0.0,
        emq=row.emq or 0.0,
        runner_up_margin=row.margin or 0.0,
        event_time=_ts(row.event_time),
    )


def _candidate(doc: Any) -> pb.Candidate | None:
    if not isinstance(doc, dict):
        return None
    seen = doc.get("seen_time")
    return pb.Candidate(
        click_id=str(doc.get("click_id", "")),
        session_id=str(doc.get("session_id", "")),
        score=float(doc.get("score") or 0.0),
        evidence=[
            pb.Evidence(
                feature=str(e.get("feature", "")),
                outcome=str(e.get("outcome", "")),
                weight=float(e.get("weight") or 0.0),
                detail=str(e.get("detail", "")),
            )
            for e in doc.get("evidence", [])
        ],
        seen_time=_ts(dt.datetime.fromisoformat(seen)) if seen else None,
    )


def explanation(row: SummaryRow) -> pb.MatchExplanation:
    return pb.MatchExplanation(
        summary=summary(row),
        matched=_candidate(row.evidence.get("matched")) if row.stage is not Stage.NONE else None,
        runner_up=_candidate(row.evidence.get("runner_up")),
        threshold=float(row.evidence.get("threshold") or 0.0),
        match_time=_ts(row.matched_at),
    )


def _day(stats: DayStats) -> pb.DailyMatchStats:
    return pb.DailyMatchStats(
        day=stats.day.isoformat(),
        conversions=stats.conversions,
        deterministic=stats.deterministic,
        semi_deterministic=stats.semi,
        probabilistic=stats.probabilistic,
        unmatched=stats.unmatched,
        emq_average=round(stats.emq_average, 2),
        low_emq_events=stats.low_emq_events,
    )


async def _abort(context: Context, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("abort raises")


async def _call(context: Context, call: Callable[[], Awaitable[T]]) -> T:
    try:
        return await call()
    except InvalidArgument as exc:
        await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    except NotFound as exc:
        await _abort(context, grpc.StatusCode.NOT_FOUND, str(exc))


class MatcherServicer(pb_grpc.MatcherServiceServicer):
    def __init__(self, queries: MatchQueries) -> None:
        self._queries = queries

    async def ExplainMatch(
        self, request: pb.ExplainMatchRequest, context: Context
    ) -> pb.ExplainMatchResponse:
        row = await _call(
            context,
            lambda: self._queries.explain(
                request.tenant_id, event_id=request.event_id, conversion_id=request.conversion_id
            ),
        )
        return pb.ExplainMatchResponse(explanation=explanation(row))

    async def BatchGetMatches(
        self, request: pb.BatchGetMatchesRequest, context: Context
    ) -> pb.BatchGetMatchesResponse:
        found = await _call(
            context,
            lambda: self._queries.by_conversions(request.tenant_id, request.conversion_ids),
        )
        return pb.BatchGetMatchesResponse(
            matches=[
                pb.ConversionMatch(conversion_id=requested, summary=summary(row))
                for requested, row in found
            ]
        )

    async def ListMatches(
        self, request: pb.ListMatchesRequest, context: Context
    ) -> pb.ListMatchesResponse:
        stages = [_STAGE_OF[s] for s in request.stages if s in _STAGE_OF]
        if len(stages) != len(request.stages):
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "stages: unknown stage")
        page = await _call(
            context,
            lambda: self._queries.page(
                request.tenant_id,
                start=_bound(request, "start_time"),
                end=_bound(request, "end_time"),
                stages=stages,
                page_size=request.page_size,
                page_token=request.page_token,
                gateway=request.gateway,
                funnel_id=request.funnel_id,
            ),
        )
        return pb.ListMatchesResponse(
            matches=[summary(r) for r in page.rows], next_page_token=page.next_token
        )

    async def ListReviewMatches(
        self, request: pb.ListReviewMatchesRequest, context: Context
    ) -> pb.ListReviewMatchesResponse:
        if request.max_runner_up_margin < 0:
            await _abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, "max_runner_up_margin: must be >= 0"
            )
        page = await _call(
            context,
            lambda: self._queries.page(
                request.tenant_id,
                start=_bound(request, "start_time"),
                end=_bound(request, "end_time"),
                stages=(Stage.NONE, Stage.PROBABILISTIC),
                max_margin=request.max_runner_up_margin or None,
                page_size=request.page_size,
                page_token=request.page_token,
            ),
        )
        return pb.ListReviewMatchesResponse(
            matches=[summary(r) for r in page.rows], next_page_token=page.next_token
        )

    async def GetMatchStats(
        self, request: pb.GetMatchStatsRequest, context: Context
    ) -> pb.GetMatchStatsResponse:
        days = await _call(
            context,
            lambda: self._queries.stats(request.tenant_id, request.start_day, request.end_day),
        )
        return pb.GetMatchStatsResponse(days=[_day(d) for d in days])
