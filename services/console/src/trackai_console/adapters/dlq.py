"""The dispatcher's dead-letter API as the console's DeadLetterQueue."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import grpc

from trackai.dispatcher.v1 import dispatcher_service_pb2 as disp
from trackai.dispatcher.v1 import dispatcher_service_pb2_grpc as disp_grpc
from trackai_console.adapters.read_apis import answered, or_none, to_datetime, to_timestamp
from trackai_console.domain.dead_letters import DeadLetter, ReplayOutcome
from trackai_console.service_layer.ports import DeadLetterPage

if TYPE_CHECKING:
    from trackai.dispatcher.v1.dispatcher_service_pb2_grpc import DispatcherServiceAsyncStub

PAGE_SIZE = 50


def _outcome(response: disp.ReplayDeadLettersResponse) -> ReplayOutcome:
    return ReplayOutcome(
        selected=response.selected,
        replayed=response.replayed,
        already_sent=response.skipped_already_sent,
        too_old=response.expired,
    )


class GrpcDeadLetterQueue:
    def __init__(self, dispatcher: grpc.aio.Channel, *, timeout_s: float) -> None:
        self._stub: DispatcherServiceAsyncStub = disp_grpc.DispatcherServiceStub(dispatcher)
        self._timeout = timeout_s

    @staticmethod
    def _filter(tenant_id: str, reason: str, since: datetime | None) -> disp.DeadLetterFilter:
        return disp.DeadLetterFilter(
            tenant_id=tenant_id, reason=reason, start_time=to_timestamp(since)
        )

    async def dead_letters(
        self, tenant_id: str, *, reason: str, since: datetime | None, page_token: str
    ) -> DeadLetterPage:
        response = await answered(
            self._stub.ListDeadLetters(
                disp.ListDeadLettersRequest(
                    filter=self._filter(tenant_id, reason, since),
                    page_size=PAGE_SIZE,
                    page_token=page_token,
                ),
                timeout=self._timeout,
            )
        )
        return DeadLetterPage(
            [
                DeadLetter(
                    event_id=d.event_id,
                    event_name=d.event_name,
                    reason=d.reason,
                    detail=d.detail,
                    meta_code=d.meta_code,
                    attempts=d.attempts,
                    event_time=to_datetime(d.event_time),
                    dead_time=to_datetime(d.dead_time),
                    replayable=d.replayable,
                )
                for d in response.dead_letters
            ],
            response.next_page_token,
        )

    async def owns(self, tenant_id: str, event_id: str) -> bool:
        found = await or_none(
            self._stub.GetEventState(
                disp.GetEventStateRequest(tenant_id=tenant_id, event_id=event_id),
                timeout=self._timeout,
            )
        )
        return found is not None

    async def replay_event(self, event_id: str, requested_by: str) -> ReplayOutcome:
        try:
            response = await self._stub.ReplayDeadLetters(
                disp.ReplayDeadLettersRequest(event_id=event_id, requested_by=requested_by),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                return ReplayOutcome(selected=1, refused=[event_id])
            raise
        return _outcome(response)

    async def replay_matching(
        self, tenant_id: str, *, reason: str, since: datetime | None, requested_by: str
    ) -> ReplayOutcome:
        response = await self._stub.ReplayDeadLetters(
            disp.ReplayDeadLettersRequest(
                filter=self._filter(tenant_id, reason, since), requested_by=requested_by
            ),
            timeout=self._timeout,
        )
        return _outcome(response)
