"""The review gate's publish rollback over in-memory ports: which GTM versions go live again, what
is recorded and announced, and the refusals that come before any provider call. No database, no
HTTP."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from trackai_provisioner.domain.provisioning import PublishRefused, Run, RunStatus
from trackai_provisioner.domain.tenants import ValidationError
from trackai_provisioner.service_layer.ports import GtmVersion
from trackai_provisioner.service_layer.review import ReviewService

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
SERVER = "accounts/1/containers/9"
WEB = "accounts/1/containers/8"


def published_run(**changes: Any) -> Run:
    run = Run(
        id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        funnel_id=uuid.uuid4(),
        status=RunStatus.PUBLISHED,
        custom_domain="acme.track.example",
        resources={"gtm_server_container_path": SERVER, "gtm_web_container_path": WEB},
        steps={},
        published_versions={"server": "12", "web": "7"},
        previous_live_versions={"server": "11", "web": "6"},
    )
    return replace(run, **changes)


class Conn:
    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield


class Pool:
    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Conn]:
        yield Conn()


@dataclass
class Runs:
    run: Run
    rolled_back: list[dict[str, Any]] = field(default_factory=list)
    #: False: another call rolled the run back first.
    wins: bool = True

    async def get_run(self, conn: Any, run_id: uuid.UUID, *, for_update: bool = False) -> Run:
        if run_id != self.run.id:
            raise LookupError(f"no run {run_id}")
        return self.run

    async def record_publish_rollback(self, conn: Any, run_id: uuid.UUID, **kw: Any) -> bool:
        self.rolled_back.append(kw)
        if self.wins:
            self.run = replace(self.run, status=RunStatus.PUBLISH_ROLLED_BACK)
        return self.wins


@dataclass
class Gtm:
    live: dict[str, str | None]
    published: list[str] = field(default_factory=list)

    async def live_version(self, container_path: str) -> GtmVersion | None:
        version = self.live[container_path]
        return GtmVersion(f"{container_path}/versions/{version}", version, "") if version else None

    async def publish(self, version_path: str) -> GtmVersion:
        self.published.append(version_path)
        return GtmVersion(version_path, version_path.rsplit("/", 1)[1], "")


@dataclass
class Outbox:
    sent: list[tuple[str, RunStatus | None]] = field(default_factory=list)

    async def __call__(
        self, conn: Any, run: Run, detail: str, at: datetime, status: RunStatus | None = None
    ) -> None:
        self.sent.append((detail, status))


def review(runs: Runs, gtm: Gtm, outbox: Outbox) -> ReviewService:
    unused: Any = None
    return ReviewService(
        Pool(), unused, unused, gtm, runs=runs, status=outbox, gate=unused, clock=lambda: NOW
    )


async def test_rollback_puts_the_previous_versions_back_and_announces_it() -> None:
    runs, outbox = Runs(published_run()), Outbox()
    gtm = Gtm({SERVER: "12", WEB: "7"})
    outcome = await review(runs, gtm, outbox).rollback_publish(str(runs.run.id), " Ana ", "bug")
    assert gtm.published == [f"{SERVER}/versions/11", f"{WEB}/versions/6"]
    assert (outcome.restored, outcome.replaced) == (
        {"server": "11", "web": "6"},
        {"server": "12", "web": "7"},
    )
    assert runs.rolled_back == [
        {
            "rolled_back_by": "Ana",
            "note": "bug",
            "restored": {"server": "11", "web": "6"},
            "at": NOW,
        }
    ]
    assert outbox.sent == [
        (
            "publish rolled back by Ana: live again server version 11, web version 6",
            RunStatus.PUBLISH_ROLLED_BACK,
        )
    ]
    assert outcome.run.status is RunStatus.PUBLISH_ROLLED_BACK


async def test_a_newer_publish_is_never_overwritten() -> None:
    runs, outbox = Runs(published_run()), Outbox()
    gtm = Gtm({SERVER: "13", WEB: "7"})
    with pytest.raises(PublishRefused, match="newer publish"):
        await review(runs, gtm, outbox).rollback_publish(str(runs.run.id), "Ana")
    assert (gtm.published, runs.rolled_back, outbox.sent) == ([], [], [])


async def test_losing_the_race_to_another_rollback_announces_nothing() -> None:
    runs, outbox = Runs(published_run(), wins=False), Outbox()
    gtm = Gtm({SERVER: "12", WEB: "7"})
    with pytest.raises(PublishRefused, match="meanwhile"):
        await review(runs, gtm, outbox).rollback_publish(str(runs.run.id), "Ana")
    assert outbox.sent == []


@pytest.mark.parametrize(
    ("run", "run_id", "by", "error"),
    [
        (published_run(), None, "  ", PublishRefused),
        (published_run(), "not-a-uuid", "Ana", ValidationError),
        (published_run(status=RunStatus.AWAITING_APPROVAL), None, "Ana", PublishRefused),
        (published_run(previous_live_versions={}), None, "Ana", PublishRefused),
    ],
)
async def test_refusals_come_before_any_gtm_call(
    run: Run, run_id: str | None, by: str, error: type[Exception]
) -> None:
    runs, outbox, gtm = Runs(run), Outbox(), Gtm({})
    with pytest.raises(error):
        await review(runs, gtm, outbox).rollback_publish(run_id or str(run.id), by)
    assert (gtm.published, runs.rolled_back, outbox.sent) == ([], [], [])


async def test_publishing_needs_a_named_reviewer() -> None:
    runs, outbox, gtm = Runs(published_run()), Outbox(), Gtm({})
    with pytest.raises(PublishRefused, match="approved_by is empty"):
        await review(runs, gtm, outbox).approve_and_publish(str(runs.run.id), " ")
    assert gtm.published == []
