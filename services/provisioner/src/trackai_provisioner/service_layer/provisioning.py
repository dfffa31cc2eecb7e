"""The provisioning saga: runs the steps of ``domain.provisioning.STEPS`` in order for one
(tenant, funnel), recording each before and after it touches a provider, so a crash resumes where it
stopped; every create is preceded by a lookup, so a re-run reuses what exists; a Stape container
that does not run within its budget rolls back what this run created (seed STORY-005;
``rollback``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from trackai_kit.logging import get_logger
from trackai_kit.telemetry import get_meter
from trackai_provisioner.domain.provisioning import (
    DONE_STEP,
    STEPS,
    DeadlineExceeded,
    Names,
    Progress,
    ProvisioningError,
    Resource,
    Run,
    RunStatus,
    StepOutcome,
    StepStatus,
    custom_domain,
    secret_free,
    status_detail,
)
from trackai_provisioner.domain.tenants import (
    Funnel,
    MetaDestination,
    NotFoundError,
    Tenant,
    ValidationError,
)
from trackai_provisioner.service_layer.ports import (
    Conn,
    Database,
    Providers,
    RunRepository,
    StatusOutbox,
)
from trackai_provisioner.service_layer.registry import TenantRegistry
from trackai_provisioner.service_layer.rollback import Reporter, SagaRollback
from trackai_provisioner.service_layer.steps import STEP_TABLE
from trackai_provisioner.service_layer.steps.context import (
    Clock,
    SagaConfig,
    Sleep,
    StepContext,
)
from trackai_provisioner.service_layer.webhook_gate import WebhookGate

log = get_logger(__name__)
#: One sample per executed step, by ``step`` (the fixed step names) and ``outcome``
#: (succeeded, skipped, failed): the ``_count`` of failed ones is the failure counter.
STEP_DURATION = get_meter("trackai.provisioner").create_histogram(
    "trackai.provisioner.step.duration",
    unit="s",
    description="Provisioning step durations, by step and outcome",
    explicit_bucket_boundaries_advisory=[0.1, 0.5, 1, 5, 15, 30, 60, 120, 300],
)


class RunInProgressError(Exception):
    """Another ProvisionTenant call is driving this funnel's run right now."""


class _Journal:
    """A step's journal on the run's connection: each write lands at once, outside any
    transaction the driver holds for the step's outcome."""

    def __init__(self, conn: Conn, runs: RunRepository, run_id: uuid.UUID) -> None:
        self._conn, self._runs, self._run_id = conn, runs, run_id

    async def save_state(self, step: str, state: dict[str, Any]) -> None:
        await self._runs.save_step_state(self._conn, self._run_id, step, state)

    async def add_created(self, step: str, resource: Resource) -> None:
        await self._runs.add_created(self._conn, self._run_id, step, resource)

    async def set_snippets(self, snippets: list[dict[str, str]]) -> None:
        await self._runs.set_snippets(self._conn, self._run_id, snippets)


def _now() -> datetime:
    return datetime.now(UTC)


class ProvisioningService:
    def __init__(
        self,
        pool: Database,
        registry: TenantRegistry,
        providers: Providers,
        config: SagaConfig,
        templates: dict[str, dict[str, Any]],
        *,
        runs: RunRepository,
        status: StatusOutbox,
        gate: WebhookGate,
        clock: Clock = _now,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._pool = pool
        self._gate = gate
        self._registry = registry
        self._p = providers
        self._cfg = config
        self._templates = templates
        self._clock = clock
        self._sleep = sleep
        self._repo = runs
        self._enqueue_status = status
        self._rollback = SagaRollback(providers, runs, self._set_run, sleep=sleep)

    # ── resolving the target ─────────────────────────────────────────────────────────────────

    async def _target(
        self, tenant_ref: str, funnel_slug: str
    ) -> tuple[Tenant, Funnel, MetaDestination]:
        config = await self._registry.tenant_config(tenant_ref)
        funnels = config.funnels
        if funnel_slug.strip():
            chosen = [(f, m) for f, m in funnels if f.slug == funnel_slug.strip()]
            if not chosen:
                raise NotFoundError(f"the tenant has no funnel with slug {funnel_slug!r}")
        elif len(funnels) == 1:
            chosen = funnels
        elif not funnels:
            raise ValidationError(
                "funnel_slug",
                "the tenant has no funnel yet: create one with `trackai funnel create`",
            )
        else:
            slugs = ", ".join(f.slug for f, _ in funnels)
            raise ValidationError(
                "funnel_slug", f"the tenant has several funnels ({slugs}): pick one"
            )
        funnel, funnel_meta = chosen[0]
        meta = funnel_meta or config.meta
        if meta is None:
            raise ValidationError(
                "meta",
                "no Meta pixel and token stored for this funnel or tenant: store them with "
                "`trackai tenant set-meta TENANT --pixel-id ... --access-token-file -`",
            )
        return config.tenant, funnel, meta

    # ── the run ──────────────────────────────────────────────────────────────────────────────

    def provision(self, tenant_ref: str, funnel_slug: str = "") -> AsyncIterator[Progress]:
        """Start or resume the funnel's run; yields progress until the run stops.

        The target is resolved before the first message, so bad input raises at once, and so
        does the webhook lock (:class:`SetupLocked` until a verified webhook arrived).
        """
        return self._stream(tenant_ref, funnel_slug)

    async def _stream(self, tenant_ref: str, funnel_slug: str) -> AsyncIterator[Progress]:
        tenant, funnel, meta = await self._target(tenant_ref, funnel_slug)
        await self._gate.require_verified(tenant)
        queue: asyncio.Queue[Progress | None] = asyncio.Queue()
        task = asyncio.create_task(self._drive(tenant, funnel, meta, queue))
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                yield item
            await task  # re-raises RunInProgressError and bugs
        finally:
            if not task.done():
                # The caller went away: stop here; the stored steps let the next call resume.
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _drive(
        self,
        tenant: Tenant,
        funnel: Funnel,
        meta: MetaDestination,
        queue: asyncio.Queue[Progress | None],
    ) -> None:
        try:
            async with self._pool.acquire() as conn:
                if not await self._repo.lock_funnel(conn, funnel.id):
                    raise RunInProgressError(
                        f"a provisioning run for funnel {funnel.slug!r} is already in progress; "
                        "wait for it (or for its process to stop) and re-run"
                    )
                try:
                    await self._run(conn, tenant, funnel, meta, queue)
                finally:
                    await self._repo.unlock_funnel(conn, funnel.id)
        finally:
            queue.put_nowait(None)

    async def _run(
        self,
        conn: Conn,
        tenant: Tenant,
        funnel: Funnel,
        meta: MetaDestination,
        queue: asyncio.Queue[Progress | None],
    ) -> None:
        run = await self._repo.unfinished_run(conn, funnel.id)
        async with conn.transaction():
            if run is None:
                run = await self._repo.create_run(
                    conn,
                    tenant_id=tenant.id,
                    funnel_id=funnel.id,
                    custom_domain=custom_domain(tenant.slug, self._cfg.base_domain),
                )
                opening = f"new run for {tenant.slug}/{funnel.slug} ({run.custom_domain})"
            else:
                await self._set_run(conn, run, RunStatus.RUNNING)
                opening = f"resuming run {run.id} for {tenant.slug}/{funnel.slug}"
            await self._status(conn, run, "run", StepStatus.RUNNING, opening)
        log.info("provisioning run", run_id=str(run.id), tenant_id=str(tenant.id))
        current = run

        def emit(step: str, status: StepStatus, detail: str, final: Run | None = None) -> None:
            queue.put_nowait(
                Progress(current.id, step, status, detail, self._clock(), current.status, final)
            )

        async def report(
            step: str,
            status: StepStatus,
            detail: str,
            write: Callable[[], Awaitable[object]] | None = None,
        ) -> None:
            """Record a change and its StatusUpdate in one transaction, then stream it."""
            async with conn.transaction():
                if write is not None:
                    await write()
                await self._status(conn, current, step, status, detail)
            emit(step, status, detail)

        emit("run", StepStatus.RUNNING, opening)
        names = Names(tenant.slug, funnel.slug)
        for step_name in STEPS:
            record = run.steps[step_name]
            if record.status in DONE_STEP:
                # Streamed for the operator, not published: nothing changed.
                emit(step_name, record.status, f"done earlier: {record.detail}")
                continue
            async with conn.transaction():
                record = await self._repo.start_step(conn, run.id, step_name)
                await self._status(
                    conn, run, step_name, StepStatus.RUNNING, f"attempt {record.attempts}"
                )
            run.steps[step_name] = record
            emit(step_name, StepStatus.RUNNING, f"attempt {record.attempts}")

            async def notify(detail: str, step: str = step_name) -> None:
                # Poll chatter is streamed only; the console sees the step's recorded outcome.
                emit(step, StepStatus.RUNNING, detail)

            ctx = StepContext(
                run=run,
                tenant=tenant,
                funnel=funnel,
                meta=meta,
                names=names,
                step=record,
                providers=self._p,
                config=self._cfg,
                templates=self._templates,
                journal=_Journal(conn, self._repo, run.id),
                notify=notify,
                clock=self._clock,
                sleep=self._sleep,
            )
            if not await self._execute(conn, ctx, report):
                return
        done = "GTM versions created, not published: send a test event, then approve and publish"
        async with conn.transaction():
            await self._set_run(conn, run, RunStatus.AWAITING_APPROVAL)
            await self._status(conn, run, "run", StepStatus.SUCCEEDED, done)
        emit("run", StepStatus.SUCCEEDED, done, await self._repo.get_run(conn, run.id))

    async def _execute(self, conn: Conn, ctx: StepContext, report: Reporter) -> bool:
        """Run one step and record its outcome; False when the run stopped (failed or rolled
        back). Its duration and outcome feed the step metrics (docs/metrics.md)."""
        started = time.perf_counter()
        ok = await self._execute_step(conn, ctx, report)
        labels = {"step": ctx.step.step, "outcome": ctx.step.status.value if ok else "failed"}
        STEP_DURATION.record(time.perf_counter() - started, labels)
        return ok

    async def _execute_step(self, conn: Conn, ctx: StepContext, report: Reporter) -> bool:
        run, step_name = ctx.run, ctx.step.step
        try:
            outcome: StepOutcome = await STEP_TABLE[step_name](ctx)
        except DeadlineExceeded as exc:
            await report(
                step_name,
                StepStatus.FAILED,
                str(exc),
                partial(
                    self._repo.set_step_status, conn, run.id, step_name, StepStatus.FAILED, str(exc)
                ),
            )
            await self._rollback(conn, run, str(exc), report)
            return False
        except ProvisioningError as exc:
            await self._fail(conn, run, step_name, str(exc), report)
            return False
        except Exception as exc:
            log.exception("provisioning step crashed", run_id=str(run.id), step=step_name)
            await self._fail(
                conn,
                run,
                step_name,
                f"unexpected error ({type(exc).__name__}); re-run to resume this step",
                report,
            )
            return False
        await report(
            step_name,
            outcome.status,
            outcome.detail,
            partial(
                self._repo.finish_step,
                conn,
                run.id,
                step_name,
                status=outcome.status,
                detail=outcome.detail,
                request=secret_free(outcome.request),
                response=secret_free(outcome.response),
                outputs=outcome.outputs,
            ),
        )
        run.resources.update(outcome.outputs)
        ctx.step.status, ctx.step.detail = outcome.status, outcome.detail
        return True

    async def _set_run(
        self, conn: Conn, run: Run, status: RunStatus, error: str | None = None
    ) -> None:
        await self._repo.set_run_status(conn, run.id, status, error)
        run.status = status

    async def _status(
        self, conn: Conn, run: Run, step: str, status: StepStatus, detail: str
    ) -> None:
        """Enqueue the StatusUpdate of a change recorded in the caller's transaction: the run's
        status, and what happened to which step in the detail."""
        await self._enqueue_status(conn, run, status_detail(step, status, detail), self._clock())

    async def _fail(self, conn: Conn, run: Run, step: str, detail: str, report: Reporter) -> None:
        await report(
            step,
            StepStatus.FAILED,
            detail,
            partial(self._repo.set_step_status, conn, run.id, step, StepStatus.FAILED, detail),
        )
        await report(
            "run",
            StepStatus.FAILED,
            f"stopped at {step}; fix the cause and re-run to resume",
            partial(self._set_run, conn, run, RunStatus.FAILED, f"{step}: {detail}"),
        )
