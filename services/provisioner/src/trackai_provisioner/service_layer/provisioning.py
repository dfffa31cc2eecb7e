"""The provisioning saga: runs the steps of ``domain.provisioning.STEPS`` in order for one
(tenant, funnel), recording each before and after it touches a provider, so a crash resumes where it
stopped; every create is preceded by a lookup, so a re-run reuses what exists; a Stape container
that does not run within its budget rolls back what this run created (seed STORY-005).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

import asyncpg

from trackai_kit.logging import get_logger
from trackai_kit.telemetry import get_meter
from trackai_provisioner.adapters.repository import Conn
from trackai_provisioner.adapters.runs import PostgresRunRepository
from trackai_provisioner.adapters.status_outbox import enqueue_status
from trackai_provisioner.domain import gtm_templates, snippets
from trackai_provisioner.domain.ports import DnsPort, GtmEntity, GtmPort, MetaPort, StapePort
from trackai_provisioner.domain.provisioning import (
    DONE_STEP,
    STEPS,
    ActionableError,
    DeadlineExceeded,
    Names,
    Progress,
    ProvisioningError,
    Resource,
    Run,
    RunStatus,
    StepOutcome,
    StepRecord,
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
from trackai_provisioner.service_layer.registry import TenantRegistry

log = get_logger(__name__)
#: One sample per executed step, by ``step`` (the fixed step names) and ``outcome``
#: (succeeded, skipped, failed): the ``_count`` of failed ones is the failure counter.
STEP_DURATION = get_meter("trackai.provisioner").create_histogram(
    "trackai.provisioner.step.duration",
    unit="s",
    description="Provisioning step durations, by step and outcome",
    explicit_bucket_boundaries_advisory=[0.1, 0.5, 1, 5, 15, 30, 60, 120, 300],
)

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]


class Reporter(Protocol):
    """Records a status change (``write``) with its StatusUpdate, then streams it."""

    async def __call__(
        self,
        step: str,
        status: StepStatus,
        detail: str,
        write: Callable[[], Awaitable[object]] | None = None,
    ) -> None: ...


#: Attempts per resource when rolling back, and the first pause between them (doubling).
ROLLBACK_DELETE_ATTEMPTS = 3
ROLLBACK_RETRY_DELAY_S = 1.0


class RunInProgressError(Exception):
    """Another ProvisionTenant call is driving this funnel's run right now."""


@dataclass(frozen=True)
class SagaConfig:
    """Everything a run needs that is not per tenant; uncertain provider facts are settings."""

    base_domain: str
    script_url: str
    stape_timeout_s: float = 600.0
    stape_poll_interval_s: float = 10.0
    stape_running_statuses: tuple[str, ...] = ("running",)
    stape_failed_statuses: tuple[str, ...] = ("error", "failed")
    domain_timeout_s: float = 300.0
    domain_poll_interval_s: float = 10.0
    domain_ready_statuses: tuple[str, ...] = ("verified",)
    domain_failed_statuses: tuple[str, ...] = ("failed",)
    stape_zone: str = "global"
    stape_plan: str = ""
    capi_template: tuple[str, str] = ("stape-io", "facebook-tag")
    pixel_template: tuple[str, str] = (
        "facebookarchive",
        "GoogleTagManager-WebTemplate-For-FacebookPixel",
    )
    google_tag_id: str = ""
    anonymize_keys: tuple[str, ...] = ()


@dataclass
class Providers:
    meta: MetaPort
    gtm: GtmPort
    stape: StapePort
    dns: DnsPort


@dataclass
class _Ctx:
    """One step's view of its run: what it may read, and how it records progress and creations."""

    run: Run
    tenant: Tenant
    funnel: Funnel
    meta: MetaDestination
    names: Names
    step: StepRecord
    conn: Conn
    repo: PostgresRunRepository
    notify: Callable[[str], Awaitable[None]]
    created_now: list[Resource] = field(default_factory=list)

    @property
    def res(self) -> dict[str, Any]:
        return self.run.resources

    async def save_state(self) -> None:
        await self.repo.save_step_state(self.conn, self.run.id, self.step.step, self.step.state)

    async def record(self, resource: Resource) -> None:
        if any(r.kind == resource.kind and r.ref == resource.ref for r in self.step.created):
            return
        self.step.created.append(resource)
        self.created_now.append(resource)
        await self.repo.add_created(self.conn, self.run.id, self.step.step, resource)

    async def ensure(
        self,
        key: str,
        lookup: Callable[[], Awaitable[Any]],
        create: Callable[[], Awaitable[Any]],
        resource: Callable[[Any], Resource],
    ) -> tuple[Any, bool]:
        """Lookup, then create only when absent. Returns (thing, created by this run).

        The intent to create is stored before the call, so when a crash separates the provider's
        create from our record, the resumed lookup still attributes the thing to this run (and
        rollback deletes it) instead of mistaking it for an earlier run's.
        """
        marker = f"create:{key}"
        found = await lookup()
        if found is not None:
            if self.step.state.get(marker):
                await self.record(resource(found))
                return found, True
            return found, False
        self.step.state[marker] = True
        await self.save_state()
        made = await create()
        await self.record(resource(made))
        return made, True


def _now() -> datetime:
    return datetime.now(UTC)


def _stape_container_ref(res: dict[str, Any]) -> str:
    return str(res["stape_container_id"])


class ProvisioningService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        registry: TenantRegistry,
        providers: Providers,
        config: SagaConfig,
        templates: dict[str, dict[str, Any]],
        *,
        clock: Clock = _now,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._pool = pool
        self._registry = registry
        self._p = providers
        self._cfg = config
        self._templates = templates
        self._clock = clock
        self._sleep = sleep
        self._repo = PostgresRunRepository()

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

        The target is resolved before the first message, so bad input raises at once.
        """
        return self._stream(tenant_ref, funnel_slug)

    async def _stream(self, tenant_ref: str, funnel_slug: str) -> AsyncIterator[Progress]:
        tenant, funnel, meta = await self._target(tenant_ref, funnel_slug)
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

            ctx = _Ctx(run, tenant, funnel, meta, names, record, conn, self._repo, notify)
            if not await self._execute(ctx, report):
                return
        done = "GTM versions created, not published: send a test event, then approve and publish"
        async with conn.transaction():
            await self._set_run(conn, run, RunStatus.AWAITING_APPROVAL)
            await self._status(conn, run, "run", StepStatus.SUCCEEDED, done)
        emit("run", StepStatus.SUCCEEDED, done, await self._repo.get_run(conn, run.id))

    async def _execute(self, ctx: _Ctx, report: Reporter) -> bool:
        """Run one step and record its outcome; False when the run stopped (failed or rolled
        back). Its duration and outcome feed the step metrics (docs/metrics.md)."""
        started = time.perf_counter()
        ok = await self._execute_step(ctx, report)
        labels = {"step": ctx.step.step, "outcome": ctx.step.status.value if ok else "failed"}
        STEP_DURATION.record(time.perf_counter() - started, labels)
        return ok

    async def _execute_step(self, ctx: _Ctx, report: Reporter) -> bool:
        conn, run, step_name = ctx.conn, ctx.run, ctx.step.step
        try:
            outcome: StepOutcome = await getattr(self, f"_step_{step_name}")(ctx)
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
        await enqueue_status(conn, run, status_detail(step, status, detail), self._clock())

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

    async def _rollback(self, conn: Conn, run: Run, reason: str, report: Reporter) -> None:
        """Delete what this run created, newest first; resources of earlier runs stay.

        DNS records go first, each delete is retried, and while a CNAME cannot be deleted the
        Stape container and domain it points at are kept: a CNAME left pointing at a deleted
        container could be claimed by whoever creates a container with that domain. Whatever
        stays is a pending cleanup, named in the run's outcome and in its steps.
        """
        stored = await self._repo.get_run(conn, run.id)
        deleting_containers = {
            r.ref for s in stored.steps.values() for r in s.created if r.kind == "gtm_container"
        }
        removed: list[str] = []
        left: list[str] = []
        # CNAMEs first, whichever step made them: nothing may point at a deleted target.
        dns_pending: list[str] = []
        for record in stored.steps.values():
            for resource in (r for r in record.created if r.kind == "dns_record"):
                if error := await self._delete_retrying(resource):
                    dns_pending.append(resource.label)
                    left.append(f"{resource.label} ({error})")
                else:
                    removed.append(resource.label)
        for record in sorted(stored.steps.values(), key=lambda s: s.position, reverse=True):
            if not record.created:
                continue
            await report(
                record.step,
                StepStatus.ROLLING_BACK,
                "deleting what this run created",
                partial(
                    self._repo.set_step_status,
                    conn,
                    run.id,
                    record.step,
                    StepStatus.ROLLING_BACK,
                    "rolling back",
                ),
            )
            step_left = await self._roll_back_step(
                record.created, deleting_containers, dns_pending, removed, left
            )
            detail = (
                f"rolled back; PENDING CLEANUP: {', '.join(step_left)}"
                if step_left
                else "rolled back"
            )
            await report(
                record.step,
                StepStatus.ROLLED_BACK,
                detail,
                partial(
                    self._repo.set_step_status,
                    conn,
                    run.id,
                    record.step,
                    StepStatus.ROLLED_BACK,
                    detail,
                ),
            )
        summary = f"{reason}. Rolled back: {', '.join(removed) or 'nothing (nothing was created)'}"
        if left:
            log.error("rollback left resources: pending cleanup", run_id=str(run.id), left=left)
            order = " (the CNAME first)" if dns_pending else ""
            summary += f". PENDING CLEANUP, delete by hand{order}: {'; '.join(left)}"
        await report(
            "run",
            StepStatus.ROLLED_BACK,
            summary + ". Re-run to start a new attempt.",
            partial(self._set_run, conn, run, RunStatus.ROLLED_BACK, summary),
        )

    async def _roll_back_step(
        self,
        created: list[Resource],
        deleting_containers: set[str],
        dns_pending: list[str],
        removed: list[str],
        left: list[str],
    ) -> list[str]:
        """Delete one step's resources, newest first; the labels of those that stay."""
        step_left: list[str] = []
        for resource in reversed(created):
            if resource.kind == "dns_record":
                if resource.label in dns_pending:
                    step_left.append(resource.label)
                continue  # deleted first, by the caller
            if resource.kind == "gtm_entity" and any(
                resource.ref.startswith(c + "/") for c in deleting_containers
            ):
                continue  # goes with its container
            if dns_pending and resource.kind in ("stape_container", "stape_domain"):
                left.append(f"{resource.label} (kept: the CNAME still points at it)")
                step_left.append(resource.label)
                continue
            if error := await self._delete_retrying(resource):
                left.append(f"{resource.label} ({error})")
                step_left.append(resource.label)
            else:
                removed.append(resource.label)
        return step_left

    async def _delete_retrying(self, resource: Resource) -> str | None:
        """Delete with a few retries (a blip must not strand a resource); the last error."""
        error = ""
        for attempt in range(ROLLBACK_DELETE_ATTEMPTS):
            if attempt:
                await self._sleep(ROLLBACK_RETRY_DELAY_S * 2 ** (attempt - 1))
            try:
                await self._delete(resource)
            except Exception as exc:
                log.warning(
                    "rollback delete failed",
                    kind=resource.kind,
                    attempt=attempt + 1,
                    error=repr(exc),
                )
                error = str(exc) or type(exc).__name__
            else:
                return None
        return error

    async def _delete(self, resource: Resource) -> None:
        if resource.kind == "gtm_container":
            await self._p.gtm.delete_container(resource.ref)
        elif resource.kind == "gtm_entity":
            await self._p.gtm.delete_entity(resource.ref)
        elif resource.kind == "stape_container":
            await self._p.stape.delete_container(resource.ref)
        elif resource.kind == "stape_domain":
            container, domain = resource.ref.split("/", 1)
            await self._p.stape.delete_domain(container, domain)
        elif resource.kind == "dns_record":
            await self._p.dns.delete_record(resource.ref)
        else:
            raise ValueError(f"unknown resource kind {resource.kind!r}")

    # ── the steps ────────────────────────────────────────────────────────────────────────────

    async def _step_validate_meta(self, ctx: _Ctx) -> StepOutcome:
        info = await self._p.meta.debug_token(ctx.meta.access_token)
        if not info.is_valid:
            raise ActionableError(
                "Meta says the stored access token is not valid "
                f"({info.error or 'is_valid false'})",
                "generate a new Conversions API token in Events Manager and store it with "
                "`trackai tenant set-meta`",
            )
        now = int(self._clock().timestamp())
        if info.expires_at and info.expires_at <= now:
            raise ActionableError(
                "the stored Meta access token has expired",
                "generate a system-user token that does not expire and store it with "
                "`trackai tenant set-meta`",
            )
        pixel = await self._p.meta.get_pixel(ctx.meta.pixel_id, ctx.meta.access_token)
        if pixel.is_unavailable:
            raise ActionableError(
                f"pixel {pixel.id} is marked unavailable by Meta",
                "pick an active pixel (dataset) in Events Manager and store it with "
                "`trackai tenant set-meta`",
            )
        expiry = "never expires" if not info.expires_at else f"expires at {info.expires_at}"
        return StepOutcome(
            detail=f"token valid ({expiry}); pixel {pixel.id} {pixel.name!r} reachable",
            request={"pixel_id": ctx.meta.pixel_id},
            response={
                "scopes": list(info.scopes),
                "expires_at": info.expires_at,
                "pixel": {"id": pixel.id, "name": pixel.name},
            },
        )

    async def _gtm_container(self, ctx: _Ctx, side: str, name: str) -> StepOutcome:
        """Find or create the ``side`` ("server"/"web") container named ``name``."""
        container, created = await ctx.ensure(
            "container",
            lambda: self._p.gtm.find_container(name),
            lambda: self._p.gtm.create_container(name, side),
            lambda c: Resource("gtm_container", c.path, f"GTM {side} container {c.public_id}"),
        )
        if side not in container.usage_context:
            raise ActionableError(
                f"GTM container {name!r} exists but is not a {side} container",
                "rename or delete that container in GTM, then re-run",
            )
        verb = "created" if created else "reused"
        return StepOutcome(
            detail=f"{verb} GTM {side} container {container.public_id}",
            outputs={
                f"gtm_{side}_container_path": container.path,
                f"gtm_{side}_container_id": container.container_id,
                f"gtm_{side}_public_id": container.public_id,
            },
            request={"name": name, "usageContext": [side]},
            response={"path": container.path, "publicId": container.public_id},
            reused=not created,
        )

    async def _step_gtm_server_container(self, ctx: _Ctx) -> StepOutcome:
        outcome = await self._gtm_container(ctx, "server", ctx.names.gtm_server_container)
        # Checked now so a container without a config fails here, not at Stape's create.
        config = await self._p.gtm.container_config(outcome.outputs["gtm_server_container_path"])
        if not config:
            raise ActionableError(
                f"GTM returned no containerConfig for {outcome.outputs['gtm_server_public_id']}",
                "open the server container in GTM (Admin → Container settings) and check it "
                "was created as a Server container",
            )
        outcome.detail += " and read its config"
        return outcome

    async def _step_stape_container(self, ctx: _Ctx) -> StepOutcome:
        name = ctx.names.stape_container
        body: dict[str, Any] = {
            "name": name,
            "codeSettings": {"domain": ctx.run.custom_domain},
            "zone": {"type": self._cfg.stape_zone},
        }
        if self._cfg.stape_plan:
            body["plan"] = self._cfg.stape_plan

        async def create() -> Any:
            # Stape wants every anonymizer key; "n" = keep the value (Meta needs IP and UA).
            keys = self._cfg.anonymize_keys or await self._p.stape.anonymize_keys()
            body["anonymizeOptions"] = dict.fromkeys(keys, "n")
            # The server container's config is a credential of sorts: read it when needed,
            # never stored on the run.
            body["code"] = await self._p.gtm.container_config(
                str(ctx.res["gtm_server_container_path"])
            )
            return await self._p.stape.create_container(body)

        container, created = await ctx.ensure(
            "container",
            lambda: self._p.stape.find_container(name),
            create,
            lambda c: Resource("stape_container", c.identifier, f"Stape container {c.identifier}"),
        )
        verb = "created" if created else "reused"
        return StepOutcome(
            detail=f"{verb} Stape container {name} ({container.identifier}), status "
            f"{container.status!r}",
            outputs={
                "stape_container_id": container.identifier,
                "stape_default_domain": container.stape_domain,
            },
            request={k: v for k, v in body.items() if k not in ("code", "anonymizeOptions")},
            response={"identifier": container.identifier, "status": container.status},
            reused=not created,
        )

    async def _poll_deadline(self, ctx: _Ctx, budget_s: float) -> float:
        """The poll's deadline, stored on first use, so a resumed run keeps the same budget."""
        if "deadline" not in ctx.step.state:
            ctx.step.state["deadline"] = self._clock().timestamp() + budget_s
            await ctx.save_state()
        return float(ctx.step.state["deadline"])

    async def _step_stape_running(self, ctx: _Ctx) -> StepOutcome:
        identifier = _stape_container_ref(ctx.res)
        budget = self._cfg.stape_timeout_s
        deadline = await self._poll_deadline(ctx, budget)
        status = ""
        polls = 0
        while True:
            try:
                container = await self._p.stape.get_container(identifier)
                status = container.status
            except ProvisioningError as exc:
                if isinstance(exc, ActionableError):
                    raise
                log.warning("stape poll failed; polling on", error=str(exc))
            polls += 1
            if status in self._cfg.stape_running_statuses:
                return StepOutcome(
                    detail=f"Stape container {identifier} is {status!r}",
                    response={"status": status, "polls": polls},
                )
            now = self._clock().timestamp()
            if status in self._cfg.stape_failed_statuses or now >= deadline:
                why = (
                    f"Stape container {identifier} reported {status!r}"
                    if status in self._cfg.stape_failed_statuses
                    else f"Stape container {identifier} not running after {budget:.0f} s "
                    f"(last status {status!r})"
                )
                raise DeadlineExceeded(why)
            await ctx.notify(
                f"Stape status {status!r}; {deadline - now:.0f} s left of {budget:.0f} s"
            )
            await self._sleep(min(self._cfg.stape_poll_interval_s, max(deadline - now, 0.0)))

    async def _step_stape_domain(self, ctx: _Ctx) -> StepOutcome:
        container = _stape_container_ref(ctx.res)
        name = ctx.run.custom_domain
        domain, created = await ctx.ensure(
            "domain",
            lambda: self._p.stape.find_domain(container, name),
            lambda: self._p.stape.add_domain(container, name),
            lambda d: Resource(
                "stape_domain", f"{container}/{d.identifier}", f"Stape domain {name}"
            ),
        )
        cname = [r for r in domain.records if r.type == "CNAME"]
        if not cname:
            raise ActionableError(
                f"Stape's answer for {name} lists no CNAME record "
                f"({[r.type for r in domain.records]})",
                "check the domain in Stape's dashboard (it must use a CNAME record, not A), "
                "delete it there, and re-run",
            )
        verb = "added" if created else "found"
        return StepOutcome(
            detail=f"{verb} custom domain {name} on Stape; expects CNAME → {cname[0].value}",
            outputs={"stape_domain_id": domain.identifier, "cname_target": cname[0].value},
            request={"name": name, "cdnType": "stape", "useCnameRecord": True},
            response={
                "identifier": domain.identifier,
                "status": domain.status,
                "records": [r.__dict__ for r in domain.records],
            },
            reused=not created,
        )

    async def _step_cloudflare_cname(self, ctx: _Ctx) -> StepOutcome:
        name = ctx.run.custom_domain
        target = str(ctx.res["cname_target"]).rstrip(".").lower()
        await self._p.dns.check_zone(self._cfg.base_domain)

        def check(records: list[Any]) -> Any:
            for record in records:
                if record.type != "CNAME":
                    raise ActionableError(
                        f"{name} already has a {record.type} record ({record.content}), which "
                        "blocks the CNAME Stape needs",
                        "delete that record in Cloudflare if nothing uses it, then re-run",
                    )
                if record.content.rstrip(".").lower() != target:
                    raise ActionableError(
                        f"{name} already points elsewhere: CNAME → {record.content}, while "
                        f"Stape expects {target}",
                        "if that record is not in use, delete it (or change it to the Stape "
                        "target) in Cloudflare, then re-run",
                    )
                if record.proxied:
                    raise ActionableError(
                        f"the CNAME {name} is proxied (orange cloud), which breaks Stape's "
                        "certificate",
                        "switch it to DNS only (grey cloud) in Cloudflare, then re-run",
                    )
                return record
            return None

        async def lookup() -> Any:
            return check(await self._p.dns.find_records(name))

        async def create() -> Any:
            made = await self._p.dns.create_cname(
                name, target, f"Track AI: tenant {ctx.tenant.slug}, run {ctx.run.id}"
            )
            return check([made])

        record, created = await ctx.ensure(
            "record",
            lookup,
            create,
            lambda r: Resource("dns_record", r.id, f"Cloudflare CNAME {name}"),
        )
        verb = "created" if created else "found"
        return StepOutcome(
            detail=f"{verb} CNAME {name} → {target} (DNS only), record {record.id}",
            outputs={"dns_record_id": record.id},
            request={"type": "CNAME", "name": name, "content": target, "proxied": False, "ttl": 1},
            response={"id": record.id, "content": record.content, "proxied": record.proxied},
            reused=not created,
        )

    async def _step_stape_domain_validation(self, ctx: _Ctx) -> StepOutcome:
        container = _stape_container_ref(ctx.res)
        domain_id = str(ctx.res["stape_domain_id"])
        budget = self._cfg.domain_timeout_s
        deadline = await self._poll_deadline(ctx, budget)
        domain = await self._p.stape.get_domain(container, domain_id)
        if domain.status not in self._cfg.domain_ready_statuses:
            domain = await self._p.stape.revalidate_domain(container, domain_id)
        while domain.status not in self._cfg.domain_ready_statuses:
            now = self._clock().timestamp()
            if now >= deadline:
                ctx.step.state.pop("deadline", None)  # a re-run gets a fresh budget
                await ctx.save_state()
                raise ActionableError(
                    f"Stape has not validated {ctx.run.custom_domain} after {budget:.0f} s "
                    f"(status {domain.status!r}, error {domain.error or 'none'})",
                    f"check that {ctx.run.custom_domain} is a DNS-only CNAME to "
                    f"{ctx.res['cname_target']} (dig CNAME {ctx.run.custom_domain}); DNS can take "
                    "minutes to propagate; re-run to resume",
                )
            await ctx.notify(
                f"domain status {domain.status!r} ({domain.error or 'no error'}); "
                f"{deadline - now:.0f} s left"
            )
            await self._sleep(min(self._cfg.domain_poll_interval_s, max(deadline - now, 0.0)))
            domain = await self._p.stape.get_domain(container, domain_id)
            if domain.status in self._cfg.domain_failed_statuses:
                # DNS may still be propagating: ask again until the budget runs out.
                domain = await self._p.stape.revalidate_domain(container, domain_id)
        url = f"https://{ctx.run.custom_domain}"
        return StepOutcome(
            detail=f"domain validated; tagging server {url}",
            outputs={"tagging_server_url": url},
            response={"status": domain.status},
        )

    def _values(self, ctx: _Ctx) -> dict[str, str]:
        res = ctx.res
        return {
            "funnel_slug": ctx.funnel.slug,
            "pixel_id": ctx.meta.pixel_id,
            "access_token": ctx.meta.access_token,
            "tagging_server_url": str(res.get("tagging_server_url", "")),
            "custom_domain": ctx.run.custom_domain,
            "capi_template_owner": self._cfg.capi_template[0],
            "capi_template_repository": self._cfg.capi_template[1],
            "pixel_template_owner": self._cfg.pixel_template[0],
            "pixel_template_repository": self._cfg.pixel_template[1],
            "google_tag_id": self._cfg.google_tag_id or str(res.get("gtm_web_public_id", "")),
        }

    async def _fill(self, ctx: _Ctx, container_path: str, template: str) -> StepOutcome:
        rendered = gtm_templates.render(self._templates[template], self._values(ctx))
        gtm = self._p.gtm
        workspace = await gtm.workspace(container_path)
        counts = {"created": 0, "updated": 0, "reused": 0}
        gallery_types: dict[str, str] = {}
        if rendered.gallery:
            imported = await gtm.list_entities(workspace, "templates")
            for ref in rendered.gallery:

                async def find(ref: gtm_templates.GalleryRef = ref) -> Any:
                    for t in imported:
                        gallery = t.body.get("galleryReference") or {}
                        if (
                            gallery.get("repository") == ref.repository
                            and gallery.get("owner") == ref.owner
                        ):
                            return t
                    return None

                async def import_it(ref: gtm_templates.GalleryRef = ref) -> GtmEntity:
                    return await gtm.import_gallery_template(workspace, ref.owner, ref.repository)

                entity, created = await ctx.ensure(
                    f"gallery:{ref.key}", find, import_it, _entity_resource
                )
                counts["created" if created else "reused"] += 1
                # A gallery template's tag type is cvt_<containerId>_<templateId>.
                owner_container = (
                    entity.body.get("containerId") or container_path.rsplit("/", 1)[-1]
                )
                gallery_types[ref.key] = f"cvt_{owner_container}_{entity.entity_id}"
        trigger_ids: dict[str, str] = {}
        summaries: list[dict[str, Any]] = []
        for kind in gtm_templates.KINDS:
            existing = {e.name: e for e in await gtm.list_entities(workspace, kind)}
            for body in rendered.entities[kind]:
                wanted = gtm_templates.bind(body, trigger_ids, gallery_types)
                entity = existing.get(body["name"])
                marker = f"create:{kind}:{body['name']}"
                if entity is None:
                    ctx.step.state[marker] = True
                    await ctx.save_state()
                    entity = await gtm.create_entity(workspace, kind, wanted)
                    await ctx.record(_entity_resource(entity))
                    counts["created"] += 1
                elif ctx.step.state.get(marker):
                    # Created by this run just before a crash: still ours to roll back.
                    await ctx.record(_entity_resource(entity))
                    counts["created"] += 1
                elif gtm_templates.differs(entity.body, wanted):
                    entity = await gtm.update_entity(entity, wanted)
                    counts["updated"] += 1
                else:
                    counts["reused"] += 1
                if kind == "triggers":
                    trigger_ids[body["name"]] = entity.entity_id
                summaries.append(gtm_templates.summary(body))
        changed = counts["created"] + counts["updated"]
        return StepOutcome(
            detail=f"{template} template v{rendered.version}: {counts['created']} created, "
            f"{counts['updated']} updated, {counts['reused']} already in place",
            outputs={
                f"{template}_workspace_path": workspace,
                f"{template}_fingerprint": rendered.fingerprint(),
            },
            request={"template": rendered.name, "version": rendered.version, "entities": summaries},
            response=counts,
            reused=changed == 0,
        )

    async def _step_gtm_server_workspace(self, ctx: _Ctx) -> StepOutcome:
        return await self._fill(ctx, str(ctx.res["gtm_server_container_path"]), "server")

    async def _step_gtm_web_container(self, ctx: _Ctx) -> StepOutcome:
        return await self._gtm_container(ctx, "web", ctx.names.gtm_web_container)

    async def _step_gtm_web_workspace(self, ctx: _Ctx) -> StepOutcome:
        return await self._fill(ctx, str(ctx.res["gtm_web_container_path"]), "web")

    async def _step_gtm_versions(self, ctx: _Ctx) -> StepOutcome:
        outputs: dict[str, Any] = {}
        made: list[str] = []
        for side in ("server", "web"):
            container = str(ctx.res[f"gtm_{side}_container_path"])
            workspace = str(ctx.res[f"{side}_workspace_path"])
            name = f"trackai {side} {ctx.funnel.slug} {ctx.res[f'{side}_fingerprint']}"
            version = await self._p.gtm.find_version(container, name)
            if version is None:
                version = await self._p.gtm.create_version(
                    workspace, name, f"Track AI provisioning run {ctx.run.id}; not published"
                )
                made.append(side)
            outputs[f"gtm_{side}_version_id"] = version.version_id
            outputs[f"gtm_{side}_version_path"] = version.path
        return StepOutcome(
            detail="versions for review: "
            + ", ".join(f"{s} {outputs[f'gtm_{s}_version_id']}" for s in ("server", "web"))
            + (f" (created: {', '.join(made)})" if made else " (already there)"),
            outputs=outputs,
            response=outputs,
            reused=not made,
        )

    async def _step_snippets(self, ctx: _Ctx) -> StepOutcome:
        data = snippets.SnippetInput(
            tenant_id=str(ctx.tenant.id),
            funnel_slug=ctx.funnel.slug,
            pixel_id=ctx.meta.pixel_id,
            gtm_public_id=str(ctx.res["gtm_web_public_id"]),
            script_url=self._cfg.script_url,
            checkout_domains=tuple(ctx.funnel.checkout_domains),
        )
        rendered = snippets.render_all(data)
        await self._repo.set_snippets(ctx.conn, ctx.run.id, rendered)
        ctx.run.snippets = rendered
        return StepOutcome(
            detail=f"snippets for {', '.join(s['platform'] for s in rendered)}",
            response={"platforms": [s["platform"] for s in rendered]},
        )


def _entity_resource(entity: GtmEntity) -> Resource:
    return Resource("gtm_entity", entity.path, f"GTM {entity.name!r}")
