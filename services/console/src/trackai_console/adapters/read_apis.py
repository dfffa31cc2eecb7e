"""The other services' gRPC read APIs (ingestion, matcher, dispatcher, provisioner) as the
console's EventSource. NOT_FOUND and INVALID_ARGUMENT (a malformed id typed into a URL) both
read as "not there"."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from trackai.dispatcher.v1 import dispatcher_service_pb2 as disp
from trackai.dispatcher.v1 import dispatcher_service_pb2_grpc as disp_grpc
from trackai.ingestion.v1 import events_pb2 as ing_events
from trackai.ingestion.v1 import ingestion_service_pb2 as ing
from trackai.ingestion.v1 import ingestion_service_pb2_grpc as ing_grpc
from trackai.matcher.v1 import events_pb2 as match_events
from trackai.matcher.v1 import matcher_service_pb2 as mat
from trackai.matcher.v1 import matcher_service_pb2_grpc as mat_grpc
from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as prov_grpc
from trackai_console.domain.events import (
    HASHED_KEYS,
    Attempt,
    Candidate,
    Conversion,
    Delivery,
    Evidence,
    Explanation,
    Match,
)
from trackai_console.domain.quality import DayQuality
from trackai_console.service_layer.ports import (
    ConversionPage,
    DeliveryPage,
    Funnel,
    MatchPage,
    SourceUnavailable,
    TenantPage,
    TenantSummary,
)

if TYPE_CHECKING:
    from trackai.dispatcher.v1.dispatcher_service_pb2_grpc import DispatcherServiceAsyncStub
    from trackai.ingestion.v1.ingestion_service_pb2_grpc import IngestionServiceAsyncStub
    from trackai.matcher.v1.matcher_service_pb2_grpc import MatcherServiceAsyncStub
    from trackai.provisioner.v1.provisioner_service_pb2_grpc import (
        TenantRegistryServiceAsyncStub,
    )

T = TypeVar("T")
_ABSENT = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
_TRACKING_KEYS = ("fbc", "fbp", "fbclid", "sck", "src", "utm_source", "utm_campaign")


def _word(enum_name: str, prefix: str) -> str:
    """``CONVERSION_STATUS_PENDING_PAYMENT`` -> ``pending_payment``."""
    return enum_name.removeprefix(prefix).lower()


def to_datetime(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def to_timestamp(value: datetime | None) -> Timestamp | None:
    """A request's time field (None leaves it unset: proto constructors skip a None)."""
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _stages(stage: str) -> list[match_events.MatchStage.ValueType]:
    """The console's stage word as the matcher's enum, for a list filter ("" filters nothing)."""
    return [match_events.MatchStage.Value("MATCH_STAGE_" + stage.upper())] if stage else []


_DOWN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


async def answered(call: Awaitable[T]) -> T:
    """The call's answer; SourceUnavailable when the service is down or too slow."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() in _DOWN:
            raise SourceUnavailable(exc.code().name) from exc
        raise


async def or_none(call: Awaitable[T]) -> T | None:
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() in _ABSENT:
            return None
        raise


def _conversion(record: ing.ConversionRecord) -> Conversion:
    c = record.conversion
    return Conversion(
        id=record.id,
        order_id=c.order_id,
        gateway=c.gateway,
        status=_word(ing_events.ConversionStatus.Name(c.status), "CONVERSION_STATUS_"),
        gateway_status=c.gateway_status,
        event_time=to_datetime(c.event_time),
        received_time=to_datetime(record.received_time),
        amount=c.amount,
        currency=c.currency,
        product_name=c.product_name,
        payment_method=_word(ing_events.PaymentMethod.Name(c.payment_method), "PAYMENT_METHOD_"),
        funnel_id=c.funnel_id,
        hashes={k: getattr(c.user_data, k) for k in HASHED_KEYS if getattr(c.user_data, k)},
        tracking={k: getattr(c.tracking, k) for k in _TRACKING_KEYS if getattr(c.tracking, k)},
        has_client_ip=bool(c.client_ip),
        has_user_agent=bool(c.user_agent),
    )


def _candidate(candidate: mat.Candidate) -> Candidate:
    return Candidate(
        session_id=candidate.session_id,
        score=candidate.score,
        evidence=tuple(
            Evidence(e.feature, e.outcome, e.weight, e.detail) for e in candidate.evidence
        ),
    )


def _match(s: mat.MatchSummary) -> Match:
    return Match(
        event_id=s.event_id,
        event_name=s.event_name,
        stage=_word(match_events.MatchStage.Name(s.stage), "MATCH_STAGE_"),
        score=s.score,
        emq=s.emq,
        runner_up_margin=s.runner_up_margin,
    )


def _delivery(e: disp.EventDelivery) -> Delivery:
    return Delivery(
        state=_word(disp.EventState.Name(e.state), "EVENT_STATE_"),
        attempts=e.attempts,
        reason=e.reason,
    )


def _explanation(explanation: mat.MatchExplanation) -> Explanation:
    return Explanation(
        match=_match(explanation.summary),
        matched=_candidate(explanation.matched) if explanation.HasField("matched") else None,
        runner_up=_candidate(explanation.runner_up) if explanation.HasField("runner_up") else None,
        threshold=explanation.threshold,
        match_time=to_datetime(explanation.match_time)
        if explanation.HasField("match_time")
        else None,
    )


def _tenant(tenant: prov.Tenant) -> TenantSummary:
    return TenantSummary(
        tenant.id,
        tenant.name,
        slug=tenant.slug,
        gateways=tuple(tenant.configured_gateways),
        meta_configured=tenant.meta_configured,
    )


class GrpcEventSource:
    def __init__(
        self,
        *,
        ingestion: grpc.aio.Channel,
        matcher: grpc.aio.Channel,
        dispatcher: grpc.aio.Channel,
        provisioner: grpc.aio.Channel,
        timeout_s: float,
    ) -> None:
        self._ingestion: IngestionServiceAsyncStub = ing_grpc.IngestionServiceStub(ingestion)
        self._matcher: MatcherServiceAsyncStub = mat_grpc.MatcherServiceStub(matcher)
        self._dispatcher: DispatcherServiceAsyncStub = disp_grpc.DispatcherServiceStub(dispatcher)
        self._registry: TenantRegistryServiceAsyncStub = prov_grpc.TenantRegistryServiceStub(
            provisioner
        )
        self._timeout = timeout_s

    async def conversions(
        self,
        tenant_id: str,
        *,
        statuses: tuple[str, ...],
        since: datetime | None,
        gateway: str,
        order_id: str,
        funnel_id: str,
        page_size: int,
        page_token: str,
    ) -> ConversionPage:
        request = ing.ListConversionsRequest(
            tenant_id=tenant_id,
            statuses=[
                ing_events.ConversionStatus.Value("CONVERSION_STATUS_" + s.upper())
                for s in statuses
            ],
            gateway=gateway,
            order_id=order_id,
            funnel_id=funnel_id,
            start_time=to_timestamp(since),
            page_size=page_size,
            page_token=page_token,
        )
        response = await self._ingestion.ListConversions(request, timeout=self._timeout)
        return ConversionPage(
            [_conversion(r) for r in response.conversions], response.next_page_token
        )

    async def conversion(self, tenant_id: str, conversion_id: str) -> Conversion | None:
        response = await or_none(
            self._ingestion.GetConversion(
                ing.GetConversionRequest(tenant_id=tenant_id, conversion_id=conversion_id),
                timeout=self._timeout,
            )
        )
        return _conversion(response.conversion) if response else None

    async def conversions_by_id(
        self, tenant_id: str, conversion_ids: list[str]
    ) -> dict[str, Conversion]:
        if not conversion_ids:
            return {}
        response = await self._ingestion.BatchGetConversions(
            ing.BatchGetConversionsRequest(tenant_id=tenant_id, conversion_ids=conversion_ids),
            timeout=self._timeout,
        )
        return {r.id: _conversion(r) for r in response.conversions}

    async def delivery_page(
        self,
        tenant_id: str,
        *,
        states: tuple[str, ...],
        since: datetime | None,
        funnel_id: str,
        stage: str,
        page_size: int,
        page_token: str,
    ) -> DeliveryPage:
        request = disp.ListEventStatesRequest(
            tenant_id=tenant_id,
            states=[disp.EventState.Value("EVENT_STATE_" + s.upper()) for s in states],
            start_time=to_timestamp(since),
            funnel_id=funnel_id,
            stages=_stages(stage),
            page_size=page_size,
            page_token=page_token,
        )
        response = await self._dispatcher.ListEventStates(request, timeout=self._timeout)
        return DeliveryPage(
            [(e.conversion_id, _delivery(e)) for e in response.events if e.conversion_id],
            response.next_page_token,
        )

    async def match_page(
        self,
        tenant_id: str,
        *,
        stage: str,
        since: datetime | None,
        gateway: str,
        funnel_id: str,
        page_size: int,
        page_token: str,
    ) -> MatchPage:
        request = mat.ListMatchesRequest(
            tenant_id=tenant_id,
            stages=_stages(stage),
            start_time=to_timestamp(since),
            gateway=gateway,
            funnel_id=funnel_id,
            page_size=page_size,
            page_token=page_token,
        )
        response = await self._matcher.ListMatches(request, timeout=self._timeout)
        return MatchPage(
            [(m.conversion_id, _match(m)) for m in response.matches if m.conversion_id],
            response.next_page_token,
        )

    async def match(self, tenant_id: str, conversion_id: str) -> Explanation | None:
        response = await or_none(
            self._matcher.ExplainMatch(
                mat.ExplainMatchRequest(tenant_id=tenant_id, conversion_id=conversion_id),
                timeout=self._timeout,
            )
        )
        return _explanation(response.explanation) if response else None

    async def delivery(self, tenant_id: str, event_id: str) -> Delivery | None:
        response = await or_none(
            self._dispatcher.GetEventState(
                disp.GetEventStateRequest(tenant_id=tenant_id, event_id=event_id),
                timeout=self._timeout,
            )
        )
        return _delivery(response.event) if response is not None else None

    async def matches(self, tenant_id: str, conversion_ids: list[str]) -> dict[str, Match]:
        if not conversion_ids:
            return {}
        response = await self._matcher.BatchGetMatches(
            mat.BatchGetMatchesRequest(tenant_id=tenant_id, conversion_ids=conversion_ids),
            timeout=self._timeout,
        )
        return {m.conversion_id: _match(m.summary) for m in response.matches}

    async def deliveries(self, tenant_id: str, event_ids: list[str]) -> dict[str, Delivery]:
        if not event_ids:
            return {}
        response = await self._dispatcher.BatchGetEventStates(
            disp.BatchGetEventStatesRequest(tenant_id=tenant_id, event_ids=event_ids),
            timeout=self._timeout,
        )
        return {e.event_id: _delivery(e) for e in response.events}

    async def attempts(self, tenant_id: str, event_id: str) -> list[Attempt]:
        response = await self._dispatcher.ListAttempts(
            disp.ListAttemptsRequest(tenant_id=tenant_id, event_id=event_id, page_size=50),
            timeout=self._timeout,
        )
        return [
            Attempt(
                number=a.attempt_number,
                outcome=_word(disp.AttemptOutcome.Name(a.outcome), "ATTEMPT_OUTCOME_"),
                http_status=a.http_status,
                meta_code=a.meta_code,
                meta_subcode=a.meta_subcode,
                fbtrace_id=a.fbtrace_id,
                detail=a.detail,
                time=to_datetime(a.attempt_time),
                latency_ms=int(a.latency.ToMilliseconds()),
            )
            for a in response.attempts
        ]

    async def funnels(self, tenant_id: str) -> list[Funnel]:
        response = await or_none(
            self._registry.ListFunnels(
                prov.ListFunnelsRequest(tenant_ref=tenant_id), timeout=self._timeout
            )
        )
        return [Funnel(f.id, f.name) for f in response.funnels] if response else []

    async def tenants(self) -> list[TenantSummary]:
        found: list[TenantSummary] = []
        token = ""
        while True:
            page = await answered(
                self._registry.ListTenants(
                    prov.ListTenantsRequest(page_size=200, page_token=token),
                    timeout=self._timeout,
                )
            )
            found.extend(_tenant(t) for t in page.tenants)
            token = page.next_page_token
            if not token:
                return found

    async def tenant_page(self, page_token: str, page_size: int) -> TenantPage:
        page = await answered(
            self._registry.ListTenants(
                prov.ListTenantsRequest(page_size=page_size, page_token=page_token),
                timeout=self._timeout,
            )
        )
        return TenantPage([_tenant(t) for t in page.tenants], page.next_page_token)


class GrpcMatchStats:
    def __init__(self, matcher: grpc.aio.Channel, *, timeout_s: float) -> None:
        self._matcher: MatcherServiceAsyncStub = mat_grpc.MatcherServiceStub(matcher)
        self._timeout = timeout_s

    async def daily(self, tenant_id: str, start_day: str, end_day: str) -> list[DayQuality]:
        response = await answered(
            self._matcher.GetMatchStats(
                mat.GetMatchStatsRequest(tenant_id=tenant_id, start_day=start_day, end_day=end_day),
                timeout=self._timeout,
            )
        )
        return [
            DayQuality(
                d.day,
                d.conversions,
                d.emq_average,
                d.low_emq_events,
                deterministic=d.deterministic,
                semi=d.semi_deterministic,
                probabilistic=d.probabilistic,
                unmatched=d.unmatched,
            )
            for d in response.days
        ]


async def close_channels(*channels: grpc.aio.Channel) -> None:
    await asyncio.gather(*(c.close() for c in channels))
