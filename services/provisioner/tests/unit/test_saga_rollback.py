"""The saga's rollback decisions with an in-memory run store and providers: what is deleted, in
which order, and what is kept while a CNAME cannot be deleted. No database, no HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from trackai_provisioner.domain.provisioning import (
    Resource,
    Run,
    RunStatus,
    StepRecord,
    StepStatus,
)
from trackai_provisioner.service_layer.ports import Providers
from trackai_provisioner.service_layer.provisioning import ProvisioningService
from trackai_provisioner.service_layer.steps.context import SagaConfig
from trackai_provisioner.service_layer.webhook_gate import WebhookGate

CNAME = Resource("dns_record", "rec-1", "Cloudflare CNAME acme.track.example")
CONTAINER = Resource("stape_container", "st-1", "Stape container st-1")
DOMAIN = Resource("stape_domain", "st-1/dom-1", "Stape domain acme.track.example")
GTM = Resource("gtm_container", "accounts/1/containers/9", "GTM server container GTM-X")
TAG = Resource("gtm_entity", "accounts/1/containers/9/workspaces/1/tags/3", "GTM 'Purchase'")


class _NeverAsked:
    """The webhook lock is checked before a run starts, never by a rollback."""

    async def activity(self, tenant_id: object, since: object) -> list[object]:
        raise AssertionError("a rollback asked about webhooks")


@dataclass
class Deleter:
    """Every provider's deletes, in order; ``stuck`` refs fail every attempt."""

    log: list[str] = field(default_factory=list)
    stuck: set[str] = field(default_factory=set)

    async def _delete(self, ref: str) -> None:
        self.log.append(ref)
        if ref in self.stuck:
            raise RuntimeError("HTTP 500")

    async def delete_record(self, ref: str) -> None:
        await self._delete(ref)

    async def delete_container(self, ref: str) -> None:
        await self._delete(ref)

    async def delete_domain(self, container: str, domain: str) -> None:
        await self._delete(f"{container}/{domain}")

    async def delete_entity(self, ref: str) -> None:
        await self._delete(ref)


def run_with(created: dict[str, list[Resource]]) -> Run:
    steps = {
        name: StepRecord(name, position, StepStatus.SUCCEEDED, created=list(resources))
        for position, (name, resources) in enumerate(created.items())
    }
    return Run(
        uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), RunStatus.RUNNING, "acme.track.example", {}, steps
    )


@dataclass
class Runs:
    run: Run
    statuses: list[tuple[str, StepStatus]] = field(default_factory=list)
    outcome: tuple[RunStatus, str | None] | None = None

    async def get_run(self, conn: object, run_id: uuid.UUID, *, for_update: bool = False) -> Run:
        return self.run

    async def set_step_status(
        self, conn: object, run_id: uuid.UUID, step: str, status: StepStatus, detail: str
    ) -> None:
        self.statuses.append((step, status))

    async def set_run_status(
        self, conn: object, run_id: uuid.UUID, status: RunStatus, error: str | None = None
    ) -> None:
        self.outcome = (status, error)


async def roll_back(run: Run, deleter: Deleter) -> tuple[Runs, list[tuple[str, str]]]:
    runs = Runs(run)
    reported: list[tuple[str, str]] = []

    async def report(
        step: str,
        status: StepStatus,
        detail: str,
        write: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        if write is not None:
            await write()
        reported.append((step, detail))

    async def no_sleep(_: float) -> None:
        return None

    async def no_status(*_: Any, **__: Any) -> None:
        return None

    saga = ProvisioningService(
        None,  # type: ignore[arg-type]  # rollback runs on the caller's connection
        None,  # type: ignore[arg-type]
        Providers(meta=None, gtm=deleter, stape=deleter, dns=deleter),  # type: ignore[arg-type]
        SagaConfig(base_domain="track.example", script_url="https://cdn.example/t.js"),
        {},
        runs=runs,  # type: ignore[arg-type]
        status=no_status,
        gate=WebhookGate(_NeverAsked()),
        sleep=no_sleep,
    )
    await saga._rollback(None, run, "Stape container not running", report)  # type: ignore[arg-type]
    return runs, reported


async def test_the_cname_goes_first_and_a_container_takes_its_entities_with_it() -> None:
    run = run_with(
        {
            "gtm_server_container": [GTM],
            "stape_container": [CONTAINER],
            "stape_domain": [DOMAIN],
            "cloudflare_cname": [CNAME],
            "gtm_server_workspace": [TAG],
        }
    )
    deleter = Deleter()
    runs, _ = await roll_back(run, deleter)
    # CNAME first; then newest step first; the tag goes with its container, not on its own.
    assert deleter.log == ["rec-1", "st-1/dom-1", "st-1", GTM.ref]
    assert runs.outcome is not None and runs.outcome[0] is RunStatus.ROLLED_BACK
    assert "PENDING CLEANUP" not in (runs.outcome[1] or "")


async def test_a_cname_that_stays_keeps_what_it_points_at() -> None:
    run = run_with(
        {"stape_container": [CONTAINER], "stape_domain": [DOMAIN], "cloudflare_cname": [CNAME]}
    )
    deleter = Deleter(stuck={"rec-1"})
    runs, reported = await roll_back(run, deleter)
    # Three attempts at the CNAME, and the Stape side it points at is never deleted.
    assert deleter.log == ["rec-1", "rec-1", "rec-1"]
    assert runs.outcome is not None
    summary = runs.outcome[1] or ""
    assert "PENDING CLEANUP, delete by hand (the CNAME first)" in summary
    assert "kept: the CNAME still points at it" in summary
    assert ("stape_container", StepStatus.ROLLED_BACK) in runs.statuses
    assert any("PENDING CLEANUP: Stape container st-1" in d for _, d in reported)
