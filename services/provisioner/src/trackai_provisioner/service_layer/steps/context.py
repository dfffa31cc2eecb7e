"""What one saga step sees of its run: the target, the providers and settings, and a journal that
records its progress and creations before and after each provider call, so a crash resumes where
it stopped and rollback knows what this run made.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from trackai_provisioner.domain.provisioning import Names, Resource, Run, StepOutcome, StepRecord
from trackai_provisioner.domain.tenants import Funnel, MetaDestination, Tenant
from trackai_provisioner.service_layer.ports import Providers

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]


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


class StepJournal(Protocol):
    """Where a step's progress goes, in the run's store, as it happens."""

    async def save_state(self, step: str, state: dict[str, Any]) -> None: ...

    async def add_created(self, step: str, resource: Resource) -> None: ...

    async def set_snippets(self, snippets: list[dict[str, str]]) -> None: ...


@dataclass
class StepContext:
    """One step's view of its run: what it may read, and how it records progress and creations."""

    run: Run
    tenant: Tenant
    funnel: Funnel
    meta: MetaDestination
    names: Names
    step: StepRecord
    providers: Providers
    config: SagaConfig
    templates: dict[str, dict[str, Any]]
    journal: StepJournal
    notify: Callable[[str], Awaitable[None]]
    clock: Clock
    sleep: Sleep
    created_now: list[Resource] = field(default_factory=list)

    @property
    def res(self) -> dict[str, Any]:
        return self.run.resources

    async def save_state(self) -> None:
        await self.journal.save_state(self.step.step, self.step.state)

    async def record(self, resource: Resource) -> None:
        if any(r.kind == resource.kind and r.ref == resource.ref for r in self.step.created):
            return
        self.step.created.append(resource)
        self.created_now.append(resource)
        await self.journal.add_created(self.step.step, resource)

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

    async def poll_deadline(self, budget_s: float) -> float:
        """The poll's deadline, stored on first use, so a resumed run keeps the same budget."""
        if "deadline" not in self.step.state:
            self.step.state["deadline"] = self.clock().timestamp() + budget_s
            await self.save_state()
        return float(self.step.state["deadline"])


#: A step: reads and records through its context, raises a ProvisioningError to stop the run.
Step = Callable[[StepContext], Awaitable[StepOutcome]]
