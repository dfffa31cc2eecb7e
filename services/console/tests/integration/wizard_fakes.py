"""In-memory stand-ins for the provisioner and the agent as the setup wizard sees them (its
ports), keeping their rules: secrets are write-only (masked to the last 4), the saga reports each
step, and a publish before a successful test event is refused. The wizard against the real
services is tests/e2e/test_console_wizard.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from trackai_console.domain.wizard import (
    SAGA_STEP_LABELS,
    Check,
    CompanyForm,
    MetaForm,
    Run,
    SagaStep,
    Setup,
    Snippet,
    TestEvent,
    WizardRecord,
    slugify,
)
from trackai_console.service_layer.ports import UpstreamRefused


def _last4(secret: str) -> str:
    return secret[-4:] if len(secret) >= 12 else ""


@dataclass
class TenantRecord:
    name: str = "Tenant"
    funnel_slug: str = ""
    funnel_name: str = ""
    landing_url: str = ""
    domains: tuple[str, ...] = ()
    test_code: str = ""
    gateways: dict[str, str] = field(default_factory=dict)
    pixel_id: str = ""
    token: str = ""
    run: Run | None = None


class FakeRegistry:
    def __init__(self) -> None:
        self.tenants: dict[str, TenantRecord] = {}
        self.published: list[tuple[str, str, str]] = []
        #: Set to hold the saga on its first step until released.
        self.hold = asyncio.Event()
        self.hold.set()

    def tenant(self, tenant_id: str) -> TenantRecord:
        return self.tenants.setdefault(tenant_id, TenantRecord())

    async def setup(self, tenant_id: str, funnel_slug: str) -> Setup | None:
        t = self.tenants.get(tenant_id)
        if t is None:
            return None
        return Setup(
            tenant_name=t.name,
            funnel_slug=t.funnel_slug,
            funnel_name=t.funnel_name,
            landing_url=t.landing_url,
            checkout_domains=t.domains,
            test_event_code=t.test_code,
            gateways={g: _last4(s) for g, s in t.gateways.items()},
            pixel_id=t.pixel_id,
            token_last4=_last4(t.token),
            meta_stored=bool(t.token),
        )

    async def save_company(self, tenant_id: str, funnel_slug: str, form: CompanyForm) -> str:
        t = self.tenant(tenant_id)
        t.name, t.funnel_name = form.company, form.funnel
        t.landing_url, t.domains = form.landing_url, form.checkout_domains
        t.funnel_slug = funnel_slug or slugify(form.funnel)
        return t.funnel_slug

    async def set_gateway(self, tenant_id: str, gateway: str, secret: str) -> None:
        self.tenant(tenant_id).gateways[gateway] = secret

    async def set_meta(self, tenant_id: str, funnel_slug: str, form: MetaForm) -> None:
        t = self.tenant(tenant_id)
        if form.token:
            t.pixel_id, t.token = form.pixel_id, form.token
        t.test_code = form.test_event_code

    async def clear_test_code(self, tenant_id: str, funnel_slug: str) -> None:
        self.tenant(tenant_id).test_code = ""

    async def provision(self, tenant_id: str, funnel_slug: str) -> str:
        t = self.tenant(tenant_id)
        names = list(SAGA_STEP_LABELS)
        steps = [SagaStep(n, "pending", "") for n in names]
        for i, name in enumerate(names):
            steps[i] = SagaStep(name, "running", "")
            t.run = Run("run-1", "running", tuple(steps))
            await self.hold.wait()
            steps[i] = SagaStep(name, "succeeded", "ok")
        t.run = Run(
            "run-1",
            "awaiting_approval",
            tuple(steps),
            snippets=(Snippet("html", "HTML", "antes de </head>", "<script>gtm()</script>"),),
            custom_domain="loja.track.example.com",
            gtm_version_id="7",
        )
        return "awaiting_approval"

    async def run(self, tenant_id: str, funnel_slug: str) -> Run | None:
        return self.tenant(tenant_id).run

    def _by_id(self, run_id: str) -> TenantRecord:
        return next(t for t in self.tenants.values() if t.run and t.run.id == run_id)

    async def send_test_event(self, run_id: str) -> TestEvent:
        t = self._by_id(run_id)
        assert t.run is not None
        t.run = replace(t.run, test_event_id="evt-test-1", test_event_time=datetime.now(UTC))
        return TestEvent("evt-test-1", 1, t.test_code)

    async def publish(self, run_id: str, approved_by: str, note: str) -> str:
        t = self._by_id(run_id)
        assert t.run is not None
        if not t.run.test_event_id:
            # The provisioner's FAILED_PRECONDITION, as the adapter words it.
            raise UpstreamRefused(
                "A publicação foi recusada (motivo: no successful test event for this run)"
            )
        t.run = replace(
            t.run, status="published", approved_by=approved_by, approve_time=datetime.now(UTC)
        )
        self.published.append((run_id, approved_by, note))
        return "8"


class FakeChecks:
    """The agent's verdicts: the webhook arrives when a test says so."""

    def __init__(self) -> None:
        self.webhook_arrived: set[str] = set()
        self.meta = Check("ok", "Token válido; não expira.", "Siga para o webhook.")
        self.calls: list[tuple[str, str, datetime]] = []

    async def check(self, tenant_id: str, funnel_slug: str, tool: str, since: datetime) -> Check:
        self.calls.append((tenant_id, tool, since))
        if tool == "validate_meta_token":
            return self.meta
        url = f"https://hooks.example.com/api/v1/webhooks/kiwify/{tenant_id}"
        if tenant_id in self.webhook_arrived:
            return Check("ok", "Webhook verificado recebido de Kiwify.", "Nada a fazer.",
                         {"blocks_setup": False})  # fmt: skip
        return Check(
            "error",
            "Nenhum webhook verificado chegou.",
            f"Kiwify: Apps → Webhooks. URL: {url}",
            {"blocks_setup": True, "webhook_urls": {"kiwify": url}},
        )


class MemoryWizardStore:
    def __init__(self) -> None:
        self.records: dict[uuid.UUID, WizardRecord] = {}

    async def load(self, tenant_id: uuid.UUID) -> WizardRecord | None:
        found = self.records.get(tenant_id)
        return replace(found) if found else None

    async def save(self, record: WizardRecord) -> None:
        self.records[record.tenant_id] = replace(record)

    async def load_many(self, tenant_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, WizardRecord]:
        return {t: replace(self.records[t]) for t in tenant_ids if t in self.records}
