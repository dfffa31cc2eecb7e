"""The setup wizard's use cases. The position is stored per tenant (closed and resumed from the
backend); the registration, the webhook and Meta verdicts, the provisioning run and its review
are read from and written to the provisioner and the agent, always for the session's tenant.

Rules enforced here, whatever the page sends: provisioning and publishing stay locked until a
verified webhook arrived (the agent's validate_gateway_webhook, "blocks setup"); a step cannot be
opened before the ones it needs; the approver is the signed-in user. The provisioner itself
refuses a publish before a successful test event."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from trackai_console.domain.accounts import User
from trackai_console.domain.wizard import (
    STEP_KEYS,
    Check,
    CompanyForm,
    GatewayForm,
    MetaForm,
    Run,
    Setup,
    TestEvent,
    WizardRecord,
    next_step,
)
from trackai_console.service_layer.dead_letters import requested_by
from trackai_console.service_layer.ports import (
    SetupChecks,
    SetupRegistry,
    SourceUnavailable,
    UpstreamRefused,
    WizardStore,
)
from trackai_kit.logging import get_logger

log = get_logger(__name__)

WEBHOOK_TOOL = "validate_gateway_webhook"
META_TOOL = "validate_meta_token"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class StepLocked(Exception):
    """A step opened or an action asked before what it needs is done (pt-BR reason)."""

    def __init__(self, message: str, step: str) -> None:
        super().__init__(message)
        self.message = message
        self.step = step


@dataclass(frozen=True)
class WizardView:
    record: WizardRecord
    setup: Setup
    run: Run | None

    @property
    def step(self) -> str:
        return self.record.step


class SetupWizard:
    def __init__(
        self,
        store: WizardStore,
        registry: SetupRegistry,
        checks: SetupChecks,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._store = store
        self._registry = registry
        self._checks = checks
        self._clock = clock
        #: Provisioning runs this process is driving, per tenant (the saga itself is resumable:
        #: a run left behind by a restart is resumed by pressing the button again).
        self._running: dict[str, asyncio.Task[None]] = {}

    async def _record(self, tenant_id: str) -> WizardRecord:
        key = uuid.UUID(tenant_id)
        record = await self._store.load(key)
        if record is None:
            record = WizardRecord(key, STEP_KEYS[0], self._clock())
            await self._store.save(record)
        return record

    async def unfinished(self, tenant_id: str) -> WizardRecord | None:
        """The stored wizard while not yet published (the overview offers to resume it); None
        when it never began or was approved."""
        record = await self._store.load(uuid.UUID(tenant_id))
        return record if record is not None and record.approved_at is None else None

    async def _setup(self, record: WizardRecord) -> Setup:
        setup = await self._registry.setup(str(record.tenant_id), record.funnel_slug)
        if setup is None:
            raise SourceUnavailable("tenant not in the registry")
        return setup

    async def view(self, tenant_id: str, step: str | None = None) -> WizardView:
        """The wizard at ``step`` (the stored one when None). A step whose prerequisites are not
        done raises StepLocked naming the step to finish first."""
        record = await self._record(tenant_id)
        setup = await self._setup(record)
        if not record.funnel_slug and setup.funnel_slug:
            record.funnel_slug = setup.funnel_slug
        run = (
            await self._registry.run(tenant_id, record.funnel_slug) if record.funnel_slug else None
        )
        if step is not None and step != record.step:
            await self._require(step, record, setup, run)
            record.step = step
            await self._store.save(record)
        return WizardView(record, setup, run)

    async def _require(
        self, step: str, record: WizardRecord, setup: Setup, run: Run | None
    ) -> None:
        index = STEP_KEYS.index(step)
        if index >= 1 and not record.funnel_slug:
            raise StepLocked("Primeiro cadastre a empresa e o funil.", "empresa")
        if index >= 2 and not setup.gateways:
            raise StepLocked(
                "Primeiro escolha o checkout e salve o segredo do webhook.", "checkout"
            )
        if index >= 3 and not setup.meta_stored:
            raise StepLocked("Primeiro salve o pixel e o token do Meta.", "meta")
        if index >= 4 and (run is None or not run.ready):
            raise StepLocked(
                "O provisionamento ainda não terminou: espere todas as etapas ficarem verdes.",
                "provisionamento",
            )
        if index >= 6 and not (run and run.test_event_id):
            raise StepLocked("Primeiro envie um evento de teste com sucesso.", "teste")

    async def save_company(self, tenant_id: str, form: CompanyForm) -> WizardRecord:
        record = await self._record(tenant_id)
        record.funnel_slug = await self._registry.save_company(tenant_id, record.funnel_slug, form)
        record.step = next_step("empresa")
        await self._store.save(record)
        return record

    async def save_gateway(self, tenant_id: str, gateway: str, secret: str) -> WizardRecord:
        record = await self._record(tenant_id)
        setup = await self._setup(record)
        form = GatewayForm.parse(gateway, secret, stored=gateway in setup.gateways)
        if form.secret:
            await self._registry.set_gateway(tenant_id, form.gateway, form.secret)
        record.gateway = form.gateway
        await self._store.save(record)
        return record

    async def webhook_check(self, tenant_id: str) -> Check:
        """Has a verified webhook arrived since the wizard began? (with the exact URL and where
        the secret goes while not)."""
        record = await self._record(tenant_id)
        return await self._checks.check(
            tenant_id, record.funnel_slug, WEBHOOK_TOOL, record.started_at
        )

    async def save_meta(
        self, tenant_id: str, pixel_id: str, token: str, test_code: str
    ) -> tuple[WizardRecord, Check]:
        """Store (token only replaced, never read back), then validate with the agent's
        validate_meta_token; the wizard moves on only when Meta accepts it."""
        record = await self._record(tenant_id)
        setup = await self._setup(record)
        form = MetaForm.parse(
            pixel_id, token, test_code, stored=setup.meta_stored and pixel_id == setup.pixel_id
        )
        await self._registry.set_meta(tenant_id, record.funnel_slug, form)
        verdict = await self._checks.check(tenant_id, record.funnel_slug, META_TOOL, self._clock())
        if verdict.status != "error":
            record.step = next_step("meta")
            await self._store.save(record)
        return record, verdict

    async def start_provisioning(self, tenant_id: str) -> None:
        """Start (or resume) the saga in the background; progress reaches the page through
        ``trackai.status``. Locked until a verified webhook arrived."""
        view = await self.view(tenant_id, "provisionamento")
        verdict = await self.webhook_check(tenant_id)
        if verdict.details.get("blocks_setup", not verdict.ok):
            raise StepLocked(
                "O provisionamento fica bloqueado até chegar um webhook verificado do seu "
                "checkout. " + verdict.action,
                "checkout",
            )
        task = self._running.get(tenant_id)
        if task is not None and not task.done():
            return
        funnel = view.record.funnel_slug
        self._running[tenant_id] = asyncio.create_task(self._provision(tenant_id, funnel))

    async def _provision(self, tenant_id: str, funnel_slug: str) -> None:
        try:
            status = await self._registry.provision(tenant_id, funnel_slug)
            log.info("provisioning run finished", tenant_id=tenant_id, run_status=status)
        except Exception as exc:  # the run's steps hold the cause; the page shows them
            log.warning("provisioning stream ended", tenant_id=tenant_id, error=repr(exc))

    def provisioning(self, tenant_id: str) -> bool:
        task = self._running.get(tenant_id)
        return task is not None and not task.done()

    async def send_test_event(self, tenant_id: str) -> TestEvent:
        view = await self.view(tenant_id, "teste")
        assert view.run is not None  # _require: the run is ready
        sent = await self._registry.send_test_event(view.run.id)
        view.record.run_id = view.run.id
        await self._store.save(view.record)
        return sent

    async def publish(self, tenant_id: str, user: User, note: str) -> str:
        """Approve and publish as the signed-in user. The provisioner refuses it before a
        successful test event (UpstreamRefused); the webhook lock is checked here too."""
        record = await self._record(tenant_id)
        setup = await self._setup(record)
        run = (
            await self._registry.run(tenant_id, record.funnel_slug) if record.funnel_slug else None
        )
        if run is None or not run.ready:
            raise StepLocked("Não há provisionamento pronto para publicar.", "provisionamento")
        verdict = await self.webhook_check(tenant_id)
        if verdict.details.get("blocks_setup", not verdict.ok):
            raise StepLocked(
                "A publicação fica bloqueada até chegar um webhook verificado do seu checkout.",
                "checkout",
            )
        version = await self._registry.publish(run.id, requested_by(user), note.strip())
        record.run_id = run.id
        record.approved_by = user.id
        record.approved_at = self._clock()
        record.step = "publicar"
        await self._store.save(record)
        if setup.test_event_code:
            # Live traffic from now on: events no longer carry the test code.
            with contextlib.suppress(UpstreamRefused):
                await self._registry.clear_test_code(tenant_id, record.funnel_slug)
        return version
