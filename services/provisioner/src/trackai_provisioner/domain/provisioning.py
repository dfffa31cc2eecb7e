"""The provisioning saga's vocabulary: steps in their documented order, statuses, the errors an
operator can act on, and the rules that decide whether a run may be published.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"
    FAILED = "failed"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"


class RunStatus(StrEnum):
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    PUBLISHED = "published"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    #: Was published; RollbackPublish re-published the versions live before.
    PUBLISH_ROLLED_BACK = "publish_rolled_back"


#: Statuses of a run that ProvisionTenant resumes rather than replaces.
UNFINISHED = (RunStatus.RUNNING, RunStatus.FAILED)
DONE_STEP = (StepStatus.SUCCEEDED, StepStatus.SKIPPED)

#: The steps, in the order of EXTERNAL-APIS.md §3 (Meta checks, GTM server container and its
#: config, Stape container and its polling, custom domain, DNS, revalidation, GTM entities, the
#: versions for review) plus the snippets. Names are stable: they are stored and streamed.
STEPS = (
    "validate_meta",
    "gtm_server_container",
    "stape_container",
    "stape_running",
    "stape_domain",
    "cloudflare_cname",
    "stape_domain_validation",
    "gtm_server_workspace",
    "gtm_web_container",
    "gtm_web_workspace",
    "gtm_versions",
    "snippets",
)


class ProvisioningError(Exception):
    """A step failed; the run stops as FAILED and a re-run resumes at that step."""


class ActionableError(ProvisioningError):
    """A failure the operator fixes outside Track AI; the message names the cause and the fix."""

    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(f"{cause}. To fix: {fix}")
        self.cause = cause
        self.fix = fix


class TransientProviderError(ProvisioningError):
    """A provider hiccup (5xx, timeout, throttling beyond our back-off); re-running resumes."""


class DeadlineExceeded(ProvisioningError):
    """A poll ran past its budget: the saga rolls back what this run created (seed STORY-005)."""


class PublishRefused(Exception):
    """ApproveAndPublish cannot publish yet; the message says what is missing."""


class SetupLocked(Exception):
    """Provisioning and publishing wait for a verified webhook from the tenant's gateway (a
    setup whose sales would never be recorded must not go live); the message says what to do."""


class DependencyUnavailable(Exception):
    """A service the decision needs did not answer; try again (nothing was changed)."""


@dataclass(frozen=True)
class Resource:
    """Something this run created at a provider; rollback deletes it with ``kind`` and ``ref``."""

    kind: str
    ref: str
    label: str

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "ref": self.ref, "label": self.label}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Resource:
        return cls(data["kind"], data["ref"], data["label"])


@dataclass
class StepOutcome:
    """What a step returns: SKIPPED when it only found what an earlier run had made."""

    detail: str
    outputs: dict[str, Any] = field(default_factory=dict)
    request: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] = field(default_factory=dict)
    reused: bool = False

    @property
    def status(self) -> StepStatus:
        return StepStatus.SKIPPED if self.reused else StepStatus.SUCCEEDED


@dataclass
class StepRecord:
    step: str
    position: int
    status: StepStatus
    attempts: int = 0
    detail: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    created: list[Resource] = field(default_factory=list)
    request: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] = field(default_factory=dict)
    started_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class Run:
    id: uuid.UUID
    tenant_id: uuid.UUID
    funnel_id: uuid.UUID
    status: RunStatus
    custom_domain: str
    resources: dict[str, Any]
    steps: dict[str, StepRecord]
    snippets: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None
    test_event_id: str | None = None
    test_event_at: datetime | None = None
    published_versions: dict[str, str] | None = None
    previous_live_versions: dict[str, str] | None = None
    rolled_back_by: str | None = None
    rolled_back_at: datetime | None = None
    restored_versions: dict[str, str] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Progress:
    """One message of the ProvisionTenant stream."""

    run_id: uuid.UUID
    step: str
    status: StepStatus
    detail: str
    time: datetime
    run_status: RunStatus
    #: Set on the last message of a run that reached AWAITING_APPROVAL.
    run: Run | None = None


def custom_domain(tenant_slug: str, base_domain: str) -> str:
    """The tenant's tagging host, ``{slug}.track.{CF_BASE_DOMAIN}`` (seed STORY-005)."""
    return f"{tenant_slug}.track.{base_domain.strip().strip('.').lower()}"


@dataclass(frozen=True)
class Names:
    """Provider-side names: unique and stable, so a lookup by name finds a previous run's work.

    The server side (GTM server container, Stape container, domain, DNS) belongs to the tenant and
    is shared by its funnels; the web container and the server-side Purchase tag are per funnel.
    """

    tenant_slug: str
    funnel_slug: str

    @property
    def gtm_server_container(self) -> str:
        return f"trackai-{self.tenant_slug}-server"

    @property
    def gtm_web_container(self) -> str:
        return f"trackai-{self.tenant_slug}-{self.funnel_slug}-web"

    @property
    def stape_container(self) -> str:
        return f"trackai-{self.tenant_slug}"


def publish_refusal(run: Run) -> str | None:
    """Why ``run`` may not be published yet, or None (seed: mandatory review; STORY-009)."""
    if run.status == RunStatus.PUBLISHED:
        return "the run is already published"
    if run.status != RunStatus.AWAITING_APPROVAL:
        return (
            f"the run is {run.status.value}, not awaiting approval: finish it first with "
            "`trackai provision TENANT --funnel FUNNEL`"
        )
    if run.test_event_at is None:
        return (
            "no successful test event yet: send one with `trackai provision test-event "
            f"{run.id}` and check it in Events Manager → Test events before publishing"
        )
    if not run.approved_by:
        return "no human approval recorded: a reviewer must approve with their name"
    return None


def status_detail(step: str, status: StepStatus, detail: str) -> str:
    """The ``detail`` of a provisioning StatusUpdate: which step did what (its ``status`` field
    is the run's status); run-level changes carry their detail alone."""
    if step == "run":
        return detail
    return f"{step} {status.value}: {detail}"


def rollback_plan(run: Run, live: dict[str, str | None]) -> dict[str, str]:
    """The version to re-publish per GTM side ("server", "web") to undo ``run``'s publish.

    ``live`` is each container's live version id now. A side is restored only while this run's
    version is still live, so rolling back never overwrites a newer publish; a side already back
    on its previous version (an interrupted rollback) is restored again harmlessly. Raises
    :class:`PublishRefused` with the reason otherwise.
    """
    if run.status != RunStatus.PUBLISHED:
        raise PublishRefused(
            f"the run is {run.status.value}: only a published run can have its publish rolled back"
        )
    previous = run.previous_live_versions or {}
    if not previous:
        raise PublishRefused(
            "nothing was live in these GTM containers before this run published, so there is no "
            "version to go back to (GTM cannot unpublish): publish a corrected version instead"
        )
    published = run.published_versions or {}
    for side, version_id in previous.items():
        now = live.get(side)
        if now not in (published.get(side), version_id):
            raise PublishRefused(
                f"the GTM {side} container's live version is {now or 'none'}, not "
                f"{published.get(side)} published by this run: a newer publish happened; roll "
                "that run back first (or choose the version in Tag Manager → Versions)"
            )
    return dict(previous)


_SECRET_MARKERS = ("token", "secret", "password", "api_key", "apikey", "authorization")


def secret_free(value: Any) -> Any:
    """Copy of a JSON-like value with every secret-looking key masked, for step summaries."""
    if isinstance(value, dict):
        return {
            k: (
                "<redacted>"
                if any(m in k.lower().replace("-", "_") for m in _SECRET_MARKERS)
                else secret_free(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [secret_free(v) for v in value]
    return value
