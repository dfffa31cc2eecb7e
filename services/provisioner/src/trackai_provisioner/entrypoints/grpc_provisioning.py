"""gRPC servicer of ProvisioningService: the saga's progress stream and the review gate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from trackai.provisioner.v1 import provisioner_service_pb2 as pb
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as pb_grpc
from trackai_provisioner.domain.provisioning import (
    ActionableError,
    DependencyUnavailable,
    ProvisioningError,
    PublishRefused,
    Run,
    RunStatus,
    SetupLocked,
    StepStatus,
)
from trackai_provisioner.domain.tenants import NotFoundError, ValidationError
from trackai_provisioner.entrypoints.grpc_registry import _call
from trackai_provisioner.service_layer.provisioning import ProvisioningService, RunInProgressError
from trackai_provisioner.service_layer.review import ReviewService

Context = grpc.aio.ServicerContext[Any, Any]

_STEP = {s: getattr(pb, f"STEP_STATUS_{s.name}") for s in StepStatus}
_RUN = {s: getattr(pb, f"RUN_STATUS_{s.name}") for s in RunStatus}


def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    out = Timestamp()
    out.FromDatetime(value)
    return out


def result_of(run: Run) -> pb.ProvisioningResult:
    res = run.resources
    return pb.ProvisioningResult(
        custom_domain=run.custom_domain,
        tagging_server_url=str(res.get("tagging_server_url", "")),
        stape_container_id=str(res.get("stape_container_id", "")),
        gtm_server_container_id=str(res.get("gtm_server_container_id", "")),
        gtm_web_container_id=str(res.get("gtm_web_container_id", "")),
        gtm_version_id=str(res.get("gtm_web_version_id", "")),
        snippets=[
            pb.Snippet(
                platform=s["platform"],
                content=s["content"],
                title=s.get("title", ""),
                where=s.get("where", ""),
            )
            for s in run.snippets
        ],
        dns_record_id=str(res.get("dns_record_id", "")),
        gtm_server_version_id=str(res.get("gtm_server_version_id", "")),
        stape_domain_id=str(res.get("stape_domain_id", "")),
    )


def run_message(run: Run) -> pb.ProvisioningRun:
    return pb.ProvisioningRun(
        run_id=str(run.id),
        tenant_id=str(run.tenant_id),
        funnel_id=str(run.funnel_id),
        run_status=_RUN[run.status],
        steps=[
            pb.ProvisioningStep(
                step=s.step,
                status=_STEP[s.status],
                detail=s.detail,
                attempts=s.attempts,
                update_time=_ts(s.updated_at),
            )
            for s in sorted(run.steps.values(), key=lambda s: s.position)
        ],
        result=result_of(run),
        error=run.error or "",
        approved_by=run.approved_by or "",
        approve_time=_ts(run.approved_at),
        test_event_id=run.test_event_id or "",
        test_event_time=_ts(run.test_event_at),
        create_time=_ts(run.created_at),
        rolled_back_by=run.rolled_back_by or "",
        rollback_time=_ts(run.rolled_back_at),
    )


class ProvisioningServicer(pb_grpc.ProvisioningServiceServicer):
    def __init__(self, saga: ProvisioningService, review: ReviewService) -> None:
        self._saga = saga
        self._review = review

    async def ProvisionTenant(
        self, request: pb.ProvisionTenantRequest, context: Context
    ) -> AsyncIterator[pb.ProvisionTenantResponse]:
        if not request.tenant_ref.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "tenant_ref: give an id or slug")
        try:
            async for progress in self._saga.provision(request.tenant_ref, request.funnel_slug):
                yield pb.ProvisionTenantResponse(
                    run_id=str(progress.run_id),
                    step=progress.step,
                    step_status=_STEP[progress.status],
                    detail=progress.detail,
                    time=_ts(progress.time),
                    run_status=_RUN[progress.run_status],
                    result=result_of(progress.run) if progress.run is not None else None,
                )
        except ValidationError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except NotFoundError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except RunInProgressError as exc:
            await context.abort(grpc.StatusCode.ABORTED, str(exc))
        except SetupLocked as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except DependencyUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))

    async def ApproveAndPublish(
        self, request: pb.ApproveAndPublishRequest, context: Context
    ) -> pb.ApproveAndPublishResponse:
        outcome = await _review_call(
            context,
            lambda: self._review.approve_and_publish(
                request.run_id, request.approved_by, request.note
            ),
        )
        return pb.ApproveAndPublishResponse(
            run_id=str(outcome.run.id),
            run_status=_RUN[outcome.run.status],
            published_version_id=outcome.published.get("web", ""),
            previous_version_id=outcome.previous.get("web", ""),
            published_server_version_id=outcome.published.get("server", ""),
            previous_server_version_id=outcome.previous.get("server", ""),
        )

    async def RollbackPublish(
        self, request: pb.RollbackPublishRequest, context: Context
    ) -> pb.RollbackPublishResponse:
        outcome = await _review_call(
            context,
            lambda: self._review.rollback_publish(
                request.run_id, request.rolled_back_by, request.note
            ),
        )
        return pb.RollbackPublishResponse(
            run_id=str(outcome.run.id),
            run_status=_RUN[outcome.run.status],
            restored_version_id=outcome.restored.get("web", ""),
            restored_server_version_id=outcome.restored.get("server", ""),
            replaced_version_id=outcome.replaced.get("web", ""),
            replaced_server_version_id=outcome.replaced.get("server", ""),
        )

    async def SendTestEvent(
        self, request: pb.SendTestEventRequest, context: Context
    ) -> pb.SendTestEventResponse:
        outcome = await _review_call(context, lambda: self._review.send_test_event(request.run_id))
        return pb.SendTestEventResponse(
            run_id=str(outcome.run_id),
            event_id=outcome.event_id,
            events_received=outcome.events_received,
            fbtrace_id=outcome.fbtrace_id,
            test_event_code=outcome.test_event_code,
        )

    async def GetProvisioningRun(
        self, request: pb.GetProvisioningRunRequest, context: Context
    ) -> pb.GetProvisioningRunResponse:
        if request.WhichOneof("ref") == "run_id":
            run = await _call(context, lambda: self._review.get_run(request.run_id))
        elif request.WhichOneof("ref") == "funnel":
            ref = request.funnel
            run = await _call(
                context, lambda: self._review.latest_run(ref.tenant_ref, ref.funnel_slug)
            )
        else:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ref: give run_id or funnel")
        return pb.GetProvisioningRunResponse(run=run_message(run))


async def _review_call(context: Context, use_case: Any) -> Any:
    """Refusals and operator-fixable provider errors are FAILED_PRECONDITION with the reason;
    transient provider failures UNAVAILABLE (retry)."""
    try:
        return await _call(context, use_case)
    except (PublishRefused, ActionableError, SetupLocked) as exc:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
    except (ProvisioningError, DependencyUnavailable) as exc:
        await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
