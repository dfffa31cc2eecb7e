"""The review gate after a run (seed: mandatory human review; STORY-009): a test Purchase sent to
the pixel with the funnel's test code, a recorded approval, and only then the GTM publish, keeping
the previously live versions so RollbackPublish can put them back.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from trackai_kit.identity import event_id as shared_event_id
from trackai_kit.logging import get_logger
from trackai_provisioner.domain.provisioning import (
    PublishRefused,
    Run,
    RunStatus,
    publish_refusal,
    rollback_plan,
)
from trackai_provisioner.domain.tenants import NotFoundError, ValidationError
from trackai_provisioner.service_layer.ports import (
    Database,
    GtmPort,
    MetaPort,
    RunRepository,
    StatusOutbox,
)
from trackai_provisioner.service_layer.registry import TenantRegistry
from trackai_provisioner.service_layer.webhook_gate import WebhookGate

log = get_logger(__name__)

#: Gateway slug of the provisioner's own test events (never a real checkout platform).
TEST_GATEWAY = "trackai-test"
#: TEST-NET-3 address (RFC 5737) and a self-describing agent: no real visitor data.
TEST_IP = "203.0.113.10"
TEST_USER_AGENT = "TrackAI-Provisioner/1.0 (test event)"


@dataclass(frozen=True)
class TestEventOutcome:
    run_id: uuid.UUID
    event_id: str
    events_received: int
    fbtrace_id: str
    test_event_code: str


@dataclass(frozen=True)
class PublishOutcome:
    run: Run
    published: dict[str, str]
    previous: dict[str, str]


@dataclass(frozen=True)
class RollbackOutcome:
    run: Run
    #: Version live again per side ("server", "web"); a side with nothing before is absent.
    restored: dict[str, str]
    #: What the run had published, per side, now replaced.
    replaced: dict[str, str]


class ReviewService:
    def __init__(
        self,
        pool: Database,
        registry: TenantRegistry,
        meta: MetaPort,
        gtm: GtmPort,
        *,
        runs: RunRepository,
        status: StatusOutbox,
        gate: WebhookGate,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._gate = gate
        self._registry = registry
        self._meta = meta
        self._gtm = gtm
        self._clock = clock
        self._repo = runs
        self._enqueue_status = status

    async def get_run(self, run_id: str) -> Run:
        async with self._pool.acquire() as conn:
            try:
                return await self._repo.get_run(conn, _run_uuid(run_id))
            except LookupError as exc:
                raise NotFoundError(str(exc)) from exc

    async def latest_run(self, tenant_ref: str, funnel_slug: str) -> Run:
        funnels = await self._registry.list_funnels(tenant_ref)
        if funnel_slug:
            funnels = [f for f in funnels if f.slug == funnel_slug]
        if len(funnels) != 1:
            raise ValidationError(
                "funnel_slug", "name exactly one funnel of the tenant (several or none match)"
            )
        async with self._pool.acquire() as conn:
            run = await self._repo.latest_run(conn, funnels[0].id)
        if run is None:
            raise NotFoundError(f"funnel {funnels[0].slug!r} has never been provisioned")
        return run

    async def send_test_event(self, run_id: str) -> TestEventOutcome:
        run = await self.get_run(run_id)
        if run.status != RunStatus.AWAITING_APPROVAL:
            raise PublishRefused(
                f"the run is {run.status.value}; a test event is sent once it awaits approval"
            )
        config = await self._registry.tenant_config(str(run.tenant_id))
        funnel, funnel_meta = next((f, m) for f, m in config.funnels if f.id == run.funnel_id)
        meta = funnel_meta or config.meta
        if meta is None:
            raise PublishRefused("no Meta pixel and token stored: `trackai tenant set-meta`")
        code = funnel.test_event_code or meta.test_event_code
        if not code:
            raise PublishRefused(
                "the funnel has no test_event_code, so a test would count as live traffic: copy "
                "the code from Events Manager → Test events and store it with "
                "`trackai tenant set-meta TENANT --funnel FUNNEL --test-event-code CODE ...`"
            )
        now = self._clock()
        event_id = shared_event_id(run.tenant_id, TEST_GATEWAY, f"test-{run.id}", "Purchase")
        event = {
            "event_name": "Purchase",
            "event_time": int(now.timestamp()),
            "event_id": event_id,
            "action_source": "website",
            "event_source_url": funnel.landing_url or f"https://{run.custom_domain}/",
            "user_data": {
                "external_id": [hashlib.sha256(f"trackai-test-{run.id}".encode()).hexdigest()],
                "client_ip_address": TEST_IP,
                "client_user_agent": TEST_USER_AGENT,
            },
            "custom_data": {"value": 1.0, "currency": "BRL"},
        }
        result = await self._meta.send_test_event(meta.pixel_id, meta.access_token, event, code)
        if result.events_received < 1:
            raise PublishRefused(
                f"Meta accepted the request but received {result.events_received} events"
            )
        async with self._pool.acquire() as conn:
            await self._repo.record_test_event(conn, run.id, event_id, now)
        log.info("test event sent", run_id=str(run.id), fbtrace_id=result.fbtrace_id)
        return TestEventOutcome(run.id, event_id, result.events_received, result.fbtrace_id, code)

    async def approve_and_publish(
        self, run_id: str, approved_by: str, note: str = ""
    ) -> PublishOutcome:
        reviewer = approved_by.strip()
        if not reviewer:
            raise PublishRefused(
                "approved_by is empty: publishing needs a recorded human approval; the reviewer "
                "gives their name (`trackai provision approve RUN --by NAME`)"
            )
        run_uuid = _run_uuid(run_id)
        # The webhook lock first: a run provisioned while the lock was open (or before it
        # existed) still waits for a verified webhook before anything goes live.
        locked = await self.get_run(run_id)
        await self._gate.require_verified(await self._registry.get_tenant(str(locked.tenant_id)))
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                try:
                    run = await self._repo.get_run(conn, run_uuid, for_update=True)
                except LookupError as exc:
                    raise NotFoundError(str(exc)) from exc
                if run.status == RunStatus.AWAITING_APPROVAL:
                    # Kept even when publishing is refused below: the review happened.
                    await self._repo.record_approval(conn, run.id, reviewer, note, self._clock())
                    run = await self._repo.get_run(conn, run.id)
            reason = publish_refusal(run)
            if reason is not None:
                raise PublishRefused(reason)
            published: dict[str, str] = {}
            previous: dict[str, str] = {}
            for side in ("server", "web"):
                live = await self._gtm.live_version(_container(run, side))
                if live is not None:
                    previous[side] = live.version_id
                version = await self._gtm.publish(str(run.resources[f"gtm_{side}_version_path"]))
                published[side] = version.version_id
            async with conn.transaction():
                await self._repo.record_publish(conn, run.id, published, previous, self._clock())
                await self._enqueue_status(
                    conn,
                    run,
                    f"published by {reviewer}: " + _versions(published),
                    self._clock(),
                    RunStatus.PUBLISHED,
                )
            run = await self._repo.get_run(conn, run.id)
        log.info("gtm published", run_id=str(run.id), published=published, previous=previous)
        return PublishOutcome(run, published, previous)

    async def rollback_publish(
        self, run_id: str, rolled_back_by: str, note: str = ""
    ) -> RollbackOutcome:
        """Re-publish the versions that were live before ``run_id``'s publish."""
        operator = rolled_back_by.strip()
        if not operator:
            raise PublishRefused(
                "rolled_back_by is empty: give your name "
                "(`trackai provision rollback RUN --by NAME`)"
            )
        run = await self.get_run(run_id)
        if run.status != RunStatus.PUBLISHED:
            rollback_plan(run, {})  # refuses with the reason before any GTM call
        live: dict[str, str | None] = {}
        for side in run.previous_live_versions or {}:
            version = await self._gtm.live_version(_container(run, side))
            live[side] = version.version_id if version is not None else None
        plan = rollback_plan(run, live)
        restored: dict[str, str] = {}
        for side in ("server", "web"):
            if side in plan:
                path = f"{_container(run, side)}/versions/{plan[side]}"
                restored[side] = (await self._gtm.publish(path)).version_id
        replaced = {s: v for s, v in (run.published_versions or {}).items() if s in restored}
        async with self._pool.acquire() as conn, conn.transaction():
            if not await self._repo.record_publish_rollback(
                conn,
                run.id,
                rolled_back_by=operator,
                note=note,
                restored=restored,
                at=self._clock(),
            ):
                raise PublishRefused("the run was rolled back meanwhile by another call")
            await self._enqueue_status(
                conn,
                run,
                f"publish rolled back by {operator}: live again " + _versions(restored),
                self._clock(),
                RunStatus.PUBLISH_ROLLED_BACK,
            )
            run = await self._repo.get_run(conn, run.id)
        log.info("gtm publish rolled back", run_id=str(run.id), restored=restored)
        return RollbackOutcome(run, restored, replaced)


def _container(run: Run, side: str) -> str:
    return str(run.resources[f"gtm_{side}_container_path"])


def _versions(by_side: dict[str, str]) -> str:
    return ", ".join(f"{side} version {version}" for side, version in sorted(by_side.items()))


def _run_uuid(run_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(run_id.strip())
    except ValueError as exc:
        raise ValidationError("run_id", f"{run_id!r} is not a run id (UUID)") from exc
