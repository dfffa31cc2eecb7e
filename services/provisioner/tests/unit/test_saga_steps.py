"""Each saga step's decision, with in-memory providers and journal: no database, no HTTP."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from trackai_provisioner.domain.provisioning import (
    STEPS,
    ActionableError,
    DeadlineExceeded,
    Names,
    ProvisioningError,
    Resource,
    Run,
    RunStatus,
    StepRecord,
    StepStatus,
)
from trackai_provisioner.domain.tenants import Funnel, MetaDestination, Tenant
from trackai_provisioner.service_layer.ports import (
    CnameRecord,
    DnsRecord,
    GtmContainer,
    PixelInfo,
    Providers,
    StapeContainer,
    StapeDomain,
    TokenInfo,
)
from trackai_provisioner.service_layer.steps import STEP_TABLE
from trackai_provisioner.service_layer.steps.cloudflare import cloudflare_cname
from trackai_provisioner.service_layer.steps.context import SagaConfig, StepContext
from trackai_provisioner.service_layer.steps.gtm import gtm_web_container
from trackai_provisioner.service_layer.steps.meta import validate_meta
from trackai_provisioner.service_layer.steps.stape import (
    stape_domain,
    stape_domain_validation,
    stape_running,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DOMAIN = "acme.track.example"
TARGET = "abc.stape.io"


@dataclass
class Journal:
    """Every write in order, so a test can see what was stored before a provider call."""

    log: list[tuple[str, Any]] = field(default_factory=list)

    async def save_state(self, step: str, state: dict[str, Any]) -> None:
        self.log.append(("state", dict(state)))

    async def add_created(self, step: str, resource: Resource) -> None:
        self.log.append(("created", resource))

    async def set_snippets(self, snippets: list[dict[str, str]]) -> None:
        self.log.append(("snippets", snippets))


class Clock:
    def __init__(self) -> None:
        self.now = NOW.timestamp()

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Meta:
    token: TokenInfo = field(default_factory=lambda: TokenInfo(True, ("ads_management",), 0))
    pixel: PixelInfo = field(default_factory=lambda: PixelInfo("123", "Acme", False))

    async def debug_token(self, token: str) -> TokenInfo:
        return self.token

    async def get_pixel(self, pixel_id: str, token: str) -> PixelInfo:
        return self.pixel


@dataclass
class Dns:
    journal: Journal
    records: list[CnameRecord] = field(default_factory=list)

    async def check_zone(self, base_domain: str) -> None:
        return None

    async def find_records(self, name: str) -> list[CnameRecord]:
        return [r for r in self.records if r.name == name]

    async def create_cname(self, name: str, content: str, comment: str) -> CnameRecord:
        self.journal.log.append(("provider create", name))
        made = CnameRecord(f"rec-{len(self.records)}", name, content, proxied=False)
        self.records.append(made)
        return made


@dataclass
class Stape:
    statuses: list[str] = field(default_factory=list)
    domains: list[StapeDomain] = field(default_factory=list)
    revalidations: int = 0

    async def get_container(self, identifier: str) -> StapeContainer:
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if status == "<error>":
            raise ProvisioningError("Stape answered 502")
        return StapeContainer(identifier, "trackai-acme", status, "x.stape.io")

    async def find_domain(self, container: str, name: str) -> StapeDomain | None:
        return None

    async def add_domain(self, container: str, name: str) -> StapeDomain:
        return self.domains[0]

    async def get_domain(self, container: str, domain: str) -> StapeDomain:
        return self.domains.pop(0) if len(self.domains) > 1 else self.domains[0]

    async def revalidate_domain(self, container: str, domain: str) -> StapeDomain:
        self.revalidations += 1
        return await self.get_domain(container, domain)


@dataclass
class Gtm:
    containers: dict[str, GtmContainer] = field(default_factory=dict)

    async def find_container(self, name: str) -> GtmContainer | None:
        return self.containers.get(name)

    async def create_container(self, name: str, usage_context: str) -> GtmContainer:
        made = GtmContainer(
            f"accounts/1/containers/{len(self.containers) + 1}",
            "9",
            "GTM-NEW",
            name,
            (usage_context,),
        )
        self.containers[name] = made
        return made


def context(
    providers: Providers,
    *,
    resources: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    journal: Journal | None = None,
) -> tuple[StepContext, Journal, Clock]:
    journal = journal or Journal()
    clock = Clock()
    tenant = Tenant(uuid.uuid4(), "acme", "Acme", None, [], NOW)
    funnel = Funnel(uuid.uuid4(), tenant.id, "main", "Main", 7, None, [], None)
    step = StepRecord("any", 0, StepStatus.RUNNING, attempts=1, state=dict(state or {}))
    run = Run(
        uuid.uuid4(), tenant.id, funnel.id, RunStatus.RUNNING, DOMAIN, dict(resources or {}), {}
    )
    notes: list[str] = []

    async def notify(detail: str) -> None:
        notes.append(detail)

    ctx = StepContext(
        run=run,
        tenant=tenant,
        funnel=funnel,
        meta=MetaDestination("123", "token", None),
        names=Names("acme", "main"),
        step=step,
        providers=providers,
        config=SagaConfig(
            base_domain="track.example",
            script_url="https://cdn.example/t.js",
            stape_timeout_s=60,
            stape_poll_interval_s=10,
            domain_timeout_s=30,
            domain_poll_interval_s=10,
        ),
        templates={},
        journal=journal,
        notify=notify,
        clock=clock,
        sleep=clock.sleep,
    )
    return ctx, journal, clock


def providers(**kinds: Any) -> Providers:
    return Providers(
        meta=kinds.get("meta", Meta()),
        gtm=kinds.get("gtm", Gtm()),
        stape=kinds.get("stape", Stape()),
        dns=kinds.get("dns", Dns(Journal())),
    )


def test_the_step_table_runs_every_stored_step_in_order() -> None:
    assert tuple(STEP_TABLE) == STEPS


# ── Meta ─────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("meta", "says"),
    [
        (Meta(token=TokenInfo(False, (), 0, "bad signature")), r"not valid \(bad signature\)"),
        (Meta(token=TokenInfo(True, (), int(NOW.timestamp()) - 1)), "has expired"),
        (Meta(pixel=PixelInfo("123", "Acme", True)), "marked unavailable"),
    ],
)
async def test_validate_meta_stops_on_what_meta_refuses(meta: Meta, says: str) -> None:
    ctx, _, _ = context(providers(meta=meta))
    with pytest.raises(ActionableError, match=says):
        await validate_meta(ctx)


async def test_validate_meta_passes_a_token_that_never_expires() -> None:
    ctx, _, _ = context(providers())
    outcome = await validate_meta(ctx)
    assert outcome.detail == "token valid (never expires); pixel 123 'Acme' reachable"
    assert "token" not in str(outcome.request) + str(outcome.response)


# ── Cloudflare ───────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("record", "says"),
    [
        (CnameRecord("r1", DOMAIN, "1.2.3.4", False, type="A"), "already has a A record"),
        (CnameRecord("r1", DOMAIN, "other.example", False), "already points elsewhere"),
        (CnameRecord("r1", DOMAIN, TARGET, True), "is proxied"),
    ],
)
async def test_cloudflare_cname_refuses_a_record_in_the_way(record: CnameRecord, says: str) -> None:
    dns = Dns(Journal(), [record])
    ctx, _, _ = context(providers(dns=dns), resources={"cname_target": TARGET + "."})
    with pytest.raises(ActionableError, match=says):
        await cloudflare_cname(ctx)
    assert dns.records == [record]  # nothing created next to it


async def test_cloudflare_cname_reuses_the_right_record_without_claiming_it() -> None:
    existing = CnameRecord("r1", DOMAIN, TARGET.upper() + ".", False)
    dns = Dns(Journal(), [existing])
    ctx, journal, _ = context(providers(dns=dns), resources={"cname_target": TARGET})
    outcome = await cloudflare_cname(ctx)
    assert outcome.reused and outcome.outputs == {"dns_record_id": "r1"}
    assert ctx.step.created == [] and journal.log == []  # an earlier run's: rollback keeps it


async def test_cloudflare_cname_stores_the_intent_before_creating() -> None:
    journal = Journal()
    dns = Dns(journal)
    ctx, _, _ = context(providers(dns=dns), resources={"cname_target": TARGET}, journal=journal)
    outcome = await cloudflare_cname(ctx)
    assert not outcome.reused
    assert [entry[0] for entry in journal.log] == ["state", "provider create", "created"]
    assert journal.log[0][1] == {"create:record": True}
    assert ctx.step.created == [Resource("dns_record", "rec-0", f"Cloudflare CNAME {DOMAIN}")]


async def test_a_resumed_step_claims_what_it_created_before_a_crash() -> None:
    # The provider made the record but the process died before we recorded it.
    dns = Dns(Journal(), [CnameRecord("r9", DOMAIN, TARGET, False)])
    ctx, journal, _ = context(
        providers(dns=dns), resources={"cname_target": TARGET}, state={"create:record": True}
    )
    outcome = await cloudflare_cname(ctx)
    assert not outcome.reused
    assert journal.log == [("created", Resource("dns_record", "r9", f"Cloudflare CNAME {DOMAIN}"))]


# ── Stape ────────────────────────────────────────────────────────────────────────────────────


async def test_stape_running_polls_through_errors_until_running() -> None:
    stape = Stape(statuses=["creating", "<error>", "creating", "running"])
    ctx, journal, clock = context(providers(stape=stape), resources={"stape_container_id": "c1"})
    outcome = await stape_running(ctx)
    assert outcome.response == {"status": "running", "polls": 4}
    assert clock.now - NOW.timestamp() == 30  # three pauses of the poll interval
    assert journal.log == [("state", {"deadline": NOW.timestamp() + 60})]


async def test_stape_running_rolls_back_on_a_failed_container() -> None:
    stape = Stape(statuses=["failed"])
    ctx, _, _ = context(providers(stape=stape), resources={"stape_container_id": "c1"})
    with pytest.raises(DeadlineExceeded, match="reported 'failed'"):
        await stape_running(ctx)


async def test_stape_running_keeps_the_stored_deadline_when_resumed() -> None:
    stape = Stape(statuses=["creating"])
    stored = NOW.timestamp() + 15  # the first attempt already spent 45 s of its 60
    ctx, _, clock = context(
        providers(stape=stape), resources={"stape_container_id": "c1"}, state={"deadline": stored}
    )
    with pytest.raises(DeadlineExceeded, match="not running after 60 s"):
        await stape_running(ctx)
    assert clock.now == stored


async def test_stape_domain_needs_a_cname_record() -> None:
    answer = StapeDomain("d1", DOMAIN, "pending", "", (DnsRecord("A", DOMAIN, "1.2.3.4"),))
    ctx, _, _ = context(
        providers(stape=Stape(domains=[answer])), resources={"stape_container_id": "c1"}
    )
    with pytest.raises(ActionableError, match="lists no CNAME record"):
        await stape_domain(ctx)


async def test_domain_validation_gives_a_rerun_a_fresh_budget() -> None:
    pending = StapeDomain("d1", DOMAIN, "failed", "no CNAME yet")
    stape = Stape(domains=[pending])
    ctx, journal, _ = context(
        providers(stape=stape),
        resources={"stape_container_id": "c1", "stape_domain_id": "d1", "cname_target": TARGET},
    )
    with pytest.raises(ActionableError, match="has not validated"):
        await stape_domain_validation(ctx)
    assert "deadline" not in ctx.step.state and journal.log[-1] == ("state", {})
    assert stape.revalidations >= 3  # a failed status is asked again while DNS propagates


async def test_domain_validation_passes_once_verified() -> None:
    stape = Stape(
        domains=[
            StapeDomain("d1", DOMAIN, "pending", ""),
            StapeDomain("d1", DOMAIN, "verified", ""),
        ]
    )
    ctx, _, _ = context(
        providers(stape=stape),
        resources={"stape_container_id": "c1", "stape_domain_id": "d1", "cname_target": TARGET},
    )
    outcome = await stape_domain_validation(ctx)
    assert outcome.outputs == {"tagging_server_url": f"https://{DOMAIN}"}


# ── GTM ──────────────────────────────────────────────────────────────────────────────────────


async def test_gtm_container_of_the_wrong_kind_is_refused() -> None:
    name = Names("acme", "main").gtm_web_container
    gtm = Gtm({name: GtmContainer("accounts/1/containers/7", "7", "GTM-X", name, ("server",))})
    ctx, _, _ = context(providers(gtm=gtm))
    with pytest.raises(ActionableError, match="is not a web container"):
        await gtm_web_container(ctx)


async def test_gtm_container_is_created_once_and_recorded() -> None:
    ctx, _, _ = context(providers())
    outcome = await gtm_web_container(ctx)
    again, _, _ = context(ctx.providers)
    reused = await gtm_web_container(again)
    assert not outcome.reused and reused.reused
    assert [r.kind for r in ctx.step.created] == ["gtm_container"] and again.step.created == []
