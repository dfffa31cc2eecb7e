"""The saga's rollback: when a run stops past its deadline, delete what this run created, newest
first, with the CNAMEs before what they point at; whatever cannot be deleted is named as a pending
cleanup in the run's outcome and its steps.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Protocol

from trackai_kit.logging import get_logger
from trackai_provisioner.domain.provisioning import Resource, Run, RunStatus, StepStatus
from trackai_provisioner.service_layer.ports import Conn, Providers, RunRepository
from trackai_provisioner.service_layer.steps.context import Sleep

log = get_logger(__name__)


class Reporter(Protocol):
    """Records a status change (``write``) with its StatusUpdate, then streams it."""

    async def __call__(
        self,
        step: str,
        status: StepStatus,
        detail: str,
        write: Callable[[], Awaitable[object]] | None = None,
    ) -> None: ...


#: Records the run's status (stored, and on the in-memory run).
SetRun = Callable[[Conn, Run, RunStatus, str | None], Awaitable[None]]

#: Attempts per resource when rolling back, and the first pause between them (doubling).
ROLLBACK_DELETE_ATTEMPTS = 3
ROLLBACK_RETRY_DELAY_S = 1.0


class SagaRollback:
    """Rolls one run back (``await rollback(conn, run, reason, report)``)."""

    def __init__(
        self, providers: Providers, runs: RunRepository, set_run: SetRun, *, sleep: Sleep
    ) -> None:
        self._p = providers
        self._repo = runs
        self._set_run = set_run
        self._sleep = sleep

    async def __call__(self, conn: Conn, run: Run, reason: str, report: Reporter) -> None:
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
