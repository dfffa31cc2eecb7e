"""Each checklist item driven through the real services: the provisioner's, agent's, matcher's and
dispatcher's gRPC APIs as the operator, ingestion's public HTTP endpoints as a checkout gateway
and a browser would call them, Chromium (Playwright) where the runner has it, and the sandbox
fakes' inspection APIs where the target runs on them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from threading import Thread
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import grpc
import httpx
import yaml
from google.protobuf.timestamp_pb2 import Timestamp

from trackai.agent.v1 import agent_service_pb2 as agent_pb
from trackai.agent.v1 import agent_service_pb2_grpc as agent_grpc
from trackai.dispatcher.v1 import dispatcher_service_pb2 as disp_pb
from trackai.dispatcher.v1 import dispatcher_service_pb2_grpc as disp_grpc
from trackai.matcher.v1 import events_pb2 as match_events
from trackai.matcher.v1 import matcher_service_pb2 as match_pb
from trackai.matcher.v1 import matcher_service_pb2_grpc as match_grpc
from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as prov_grpc
from trackai_cli.core import Context
from trackai_cli.qa.settings import QaSettings
from trackai_kit.identity import event_id

T = TypeVar("T")

GATEWAY = "kiwify"
FUNNEL = "qa"
CHECKOUT = "https://pay.kiwify.com.br/QaGate01"
#: Meta's click id format (fbq: ``fb.<subdomain index>.<ms>.<fbclid>``).
FBC_RE = r"^fb\.1\.\d{13}\.{fbclid}$"
DEAD_SALES = 6  # one more than the DLQ alarm's threshold (TrackaiDlqDepth: > 5)
DEAD_GAUGE = "trackai_dispatcher_dead_events"
#: What a Meta 5xx may leave on the ladder: retried, or parked while the breaker is open.
LADDER_OUTCOMES = frozenset(
    {
        disp_pb.ATTEMPT_OUTCOME_RETRYABLE,
        disp_pb.ATTEMPT_OUTCOME_TIMEOUT,
        disp_pb.ATTEMPT_OUTCOME_BREAKER_OPEN,
    }
)


class Failed(Exception):
    """The item's expectation was not met."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(actual)
        self.expected = expected
        self.actual = actual


class Skip(Exception):
    """The item cannot be checked on this target (said why)."""


@dataclass
class Trail:
    """What one item did, for its report: the path used and the steps to reproduce."""

    path: str = "API/CLI"
    steps: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    trace_id: str = ""

    def step(self, text: str) -> None:
        self.steps.append(text)

    def saw(self, text: str) -> None:
        self.evidence.append(text)


def expect(ok: object, expected: str, actual: str) -> None:
    if not ok:
        raise Failed(expected, actual)


async def until(
    probe: Callable[[], Awaitable[T | None]], seconds: float, expected: str, what: str
) -> T:
    """Poll ``probe`` until it returns a truthy value; Failed with ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.5)
    raise Failed(expected, f"after {seconds:.0f} s: {what} (last seen: {last!r})")


def kiwify_sale(order_id: str, session_id: str | None, *, panel_test: bool = False) -> bytes:
    """Kiwify's approved-sale payload as of now (carrying ``session_id`` in ``sck``), or the
    panel's test payload (its sample buyer, no tracking parameters)."""
    payload = json.loads(resources.files(__package__).joinpath("kiwify_sale.json").read_text())
    brasilia_now = datetime.now(ZoneInfo("America/Sao_Paulo")).strftime("%Y-%m-%d %H:%M")
    payload.update(
        order_id=order_id, created_at=brasilia_now, updated_at=brasilia_now,
        approved_date=brasilia_now,
    )  # fmt: skip
    tracking = payload["TrackingParameters"]
    if panel_test:
        payload["Customer"].update(email="johndoe@example.com", full_name="John Doe")
        payload["TrackingParameters"] = dict.fromkeys(tracking)
    else:
        tracking["sck"] = session_id
    return json.dumps(payload).encode()


class Landing:
    """The seller's landing page, served by the runner: the snippet the provisioner generated
    (set once it exists) and a checkout link. Bound on the loopback; the agent reaches it only
    on a local stack (QA_LANDING_URL gives one reachable from a deployment)."""

    def __init__(self, host: str) -> None:
        self.html = "<!doctype html><html><head><title>Curso</title></head><body></body></html>"
        landing = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = landing.html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                """Quiet: the runner's output is the report."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}/"
        self.browser_url = f"http://{host}:{port}/"
        Thread(target=self._server.serve_forever, daemon=True).start()

    def page(self, snippet: str) -> None:
        self.html = (
            f'<!doctype html><html><head><meta charset="utf-8">{snippet}</head><body>'
            f'<a id="buy" href="{CHECKOUT}">Comprar</a></body></html>'
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Browser:
    """Chromium through Playwright, when this runner has both (the local stack, CI); None
    otherwise, and the items say they took the API path."""

    def __init__(self, playwright: Any, browser: Any) -> None:
        self._playwright = playwright
        self.browser = browser

    @classmethod
    async def open(cls) -> Browser | None:
        chromium = shutil.which("chromium")
        if chromium is None:
            return None
        try:
            from playwright.async_api import async_playwright
        except ImportError:
            return None
        playwright = await async_playwright().start()
        browser = await playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        return cls(playwright, browser)

    async def close(self) -> None:
        await self.browser.close()
        await self._playwright.stop()


class Checklist:
    """State shared by the items of one run, in order: the tenant, its provisioning run, the
    click's session, the sale."""

    def __init__(self, settings: QaSettings, ctx: Context, http: httpx.AsyncClient) -> None:
        self.s = settings
        self.ctx = ctx
        self.http = http
        self.run_tag = secrets.token_hex(4)
        self.slug = settings.tenant_slug or (
            "qa-gate" if settings.non_destructive else f"qa-{self.run_tag}"
        )
        self.gateway_secret = secrets.token_urlsafe(24)
        self.setup_start = datetime.now(UTC)
        self.tenant_id = ""
        self.run_id = ""
        self.result: prov.ProvisioningResult | None = None
        #: The gateway panel's test webhook, sent once (the webhook lock needs it first).
        self.panel_test: httpx.Response | None = None
        self.provision_started = 0.0
        self.provision_done = 0.0
        self.landing: Landing | None = None
        self.browser: Browser | None = None
        self.fbclid = f"QaGate{self.run_tag}FbClId"
        self.fbc = ""
        self.session_id = ""
        self.order_id = f"qa-{self.run_tag}-sale"
        self.browser_event_id = ""
        self.dead_orders: list[str] = []
        self.metrics_at_dlq = ""

    # -- stubs -------------------------------------------------------------------------------
    @property
    def registry(self) -> prov_grpc.TenantRegistryServiceAsyncStub:
        return prov_grpc.TenantRegistryServiceStub(self.ctx.channel("provisioner"))

    @property
    def provisioning(self) -> prov_grpc.ProvisioningServiceAsyncStub:
        return prov_grpc.ProvisioningServiceStub(self.ctx.channel("provisioner"))

    @property
    def agent(self) -> agent_grpc.AgentServiceAsyncStub:
        return agent_grpc.AgentServiceStub(self.ctx.channel("agent"))

    @property
    def matcher(self) -> match_grpc.MatcherServiceAsyncStub:
        return match_grpc.MatcherServiceStub(self.ctx.channel("matcher"))

    @property
    def dispatcher(self) -> disp_grpc.DispatcherServiceAsyncStub:
        return disp_grpc.DispatcherServiceStub(self.ctx.channel("dispatcher"))

    def sandbox(self, name: str) -> str:
        url: str = getattr(self.s, f"{name}_sandbox_url")
        if not url:
            raise Skip(f"the target's {name} is not a sandbox fake (QA_{name.upper()}_SANDBOX_URL)")
        return url.rstrip("/")

    async def sandbox_get(self, fake: str, path: str, **params: str) -> Any:
        answer = await self.http.get(self.sandbox(fake) + path, params=params)
        answer.raise_for_status()
        return answer.json()

    async def close(self) -> None:
        if self.browser is not None:
            await self.browser.close()
        if self.landing is not None:
            self.landing.close()

    # -- shared moves ------------------------------------------------------------------------
    def signed(self, body: bytes) -> str:
        return hmac.new(self.gateway_secret.encode(), body, hashlib.sha1).hexdigest()

    async def post_sale(self, trail: Trail, body: bytes) -> httpx.Response:
        url = f"{self.s.base_url}/api/v1/webhooks/{GATEWAY}/{self.tenant_id}"
        trail.step(f"POST {url}?signature=<HMAC-SHA1 of the body> (Kiwify payload)")
        answer = await self.http.post(
            url,
            params={"signature": self.signed(body)},
            content=body,
            headers={"Content-Type": "application/json"},
        )
        return answer

    async def run_check(self, trail: Trail, tool: str) -> agent_pb.RunCheckResponse:
        trail.path = "agent"
        trail.step(f"agent RunCheck {tool} (tenant {self.tenant_id}, funnel {FUNNEL})")
        start = Timestamp()
        start.FromDatetime(self.setup_start)
        answer: agent_pb.RunCheckResponse = await self.agent.RunCheck(
            agent_pb.RunCheckRequest(
                tenant_id=self.tenant_id, funnel_slug=FUNNEL, tool=tool, setup_start_time=start
            ),
            timeout=120,
        )
        return answer

    async def meta_events(self, event_id: str) -> list[dict[str, Any]]:
        data = await self.sandbox_get(
            "meta", "/_sandbox/events", pixel_id=self.s.pixel_id, event_id=event_id
        )
        rows: list[dict[str, Any]] = data["data"]
        return rows

    async def match_of(self, order_id: str) -> match_pb.MatchSummary | None:
        token = ""
        while True:
            page = await self.matcher.ListMatches(
                match_pb.ListMatchesRequest(
                    tenant_id=self.tenant_id, page_size=500, page_token=token
                ),
                timeout=30,
            )
            for row in page.matches:
                if row.order_id == order_id:
                    return row
            token = page.next_page_token
            if not token:
                return None

    # -- the items ---------------------------------------------------------------------------
    async def item1(self, t: Trail) -> None:
        try:
            t.step(f"GetTenant slug={self.slug}")
            tenant = (
                await self.registry.GetTenant(prov.GetTenantRequest(slug=self.slug), timeout=30)
            ).tenant
            t.saw(f"tenant {self.slug} exists (reused)")
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            t.step(f"CreateTenant name='QA gate {self.run_tag}' slug={self.slug}")
            tenant = (
                await self.registry.CreateTenant(
                    prov.CreateTenantRequest(
                        name=f"QA gate {self.run_tag}",
                        slug=self.slug,
                        allowed_domains=[self.s.landing_host],
                        # Item 14 sends a burst of sales; the default limit is tested elsewhere.
                        rate_limit_per_minute=10_000,
                    ),
                    timeout=30,
                )
            ).tenant
        self.tenant_id = tenant.id
        self.landing = Landing(self.s.landing_host)
        # The runner's own page is on its loopback: reachable by a local stack's agent only, and
        # needed by destructive items only (6); a non-destructive run stores none.
        landing_url = self.s.landing_url or ("" if self.s.non_destructive else self.landing.url)
        funnels = await self.registry.ListFunnels(
            prov.ListFunnelsRequest(tenant_ref=tenant.id), timeout=30
        )
        if not any(f.slug == FUNNEL for f in funnels.funnels):
            t.step(f"CreateFunnel slug={FUNNEL} landing_url={landing_url}")
            await self.registry.CreateFunnel(
                prov.CreateFunnelRequest(
                    tenant_ref=tenant.id,
                    name="Funil QA",
                    slug=FUNNEL,
                    landing_url=landing_url,
                    checkout_domains=[urlsplit(CHECKOUT).hostname or ""],
                    test_event_code=self.s.test_event_code,
                ),
                timeout=30,
            )
        t.step(f"SetGatewayCredential gateway={GATEWAY} secret=<random>")
        await self.registry.SetGatewayCredential(
            prov.SetGatewayCredentialRequest(
                tenant_ref=tenant.id, gateway=GATEWAY, secret=self.gateway_secret
            ),
            timeout=30,
        )
        t.step(f"SetMetaCredential pixel_id={self.s.pixel_id} access_token=<QA_META_TOKEN>")
        await self.registry.SetMetaCredential(
            prov.SetMetaCredentialRequest(
                tenant_ref=tenant.id,
                pixel_id=self.s.pixel_id,
                access_token=self.s.meta_token.get_secret_value(),
                test_event_code=self.s.test_event_code,
            ),
            timeout=30,
        )
        t.step("GetTenant: configured_gateways, meta_configured")
        stored = (
            await self.registry.GetTenant(prov.GetTenantRequest(id=tenant.id), timeout=30)
        ).tenant
        expect(
            GATEWAY in stored.configured_gateways and stored.meta_configured,
            f"{GATEWAY} credential and Meta destination stored",
            f"configured_gateways={list(stored.configured_gateways)}, "
            f"meta_configured={stored.meta_configured}",
        )
        t.saw(f"tenant {stored.slug} ({stored.id}): {GATEWAY} + Meta pixel {self.s.pixel_id}")

    async def _provision(self, t: Trail) -> prov.ProvisioningResult:
        """Items 2-5 share one provisioning run (the saga), started on first use."""
        if self.result is not None:
            t.step(f"(provisioning run {self.run_id}, already done by an earlier item)")
            return self.result
        # The webhook lock: provisioning waits for a verified webhook, as a seller sends one
        # from the gateway's panel before the wizard's provisioning step.
        await self._panel_test(t)
        t.step(f"ProvisionTenant tenant_ref={self.tenant_id} funnel={FUNNEL} (streamed)")
        self.provision_started = time.monotonic()
        last: prov.ProvisionTenantResponse | None = None
        async for message in self.provisioning.ProvisionTenant(
            prov.ProvisionTenantRequest(tenant_ref=self.tenant_id, funnel_slug=FUNNEL),
            timeout=self.s.stape_deadline_s + 120,
        ):
            last = message
            self.run_id = message.run_id or self.run_id
        self.provision_done = time.monotonic()
        expect(
            last is not None and last.run_status == prov.RUN_STATUS_AWAITING_APPROVAL,
            "the run reaches awaiting approval",
            "the provisioning stream ended without a word"
            if last is None
            else f"run {last.run_id} {prov.RunStatus.Name(last.run_status)} at step "
            f"{last.step}: {last.detail}",
        )
        assert last is not None
        self.result = last.result
        return self.result

    async def item2(self, t: Trail) -> None:
        result = await self._provision(t)
        expect(result.dns_record_id, "a Cloudflare DNS record id", "the run has none")
        t.step(f"GET cloudflare fake /_sandbox/records name={result.custom_domain}")
        records = (
            await self.sandbox_get("cloudflare", "/_sandbox/records", name=result.custom_domain)
        )["data"]
        cnames = [r for r in records if r.get("type") == "CNAME"]
        expect(cnames, f"a CNAME for {result.custom_domain}", f"records: {records}")
        [record] = cnames
        expect(
            record.get("proxied") is False,
            "proxied=false (Stape validates the domain through the CNAME)",
            f"proxied={record.get('proxied')!r} in {record}",
        )
        t.saw(f"CNAME {record['name']} → {record.get('content')} proxied=false")

    async def item3(self, t: Trail) -> None:
        result = await self._provision(t)
        took = self.provision_done - self.provision_started
        t.step(f"GET stape fake /_sandbox/containers (container {result.stape_container_id})")
        rows = (await self.sandbox_get("stape", "/_sandbox/containers"))["data"]
        [container] = [
            c
            for c in rows
            if result.stape_container_id in (str(c.get("identifier")), str(c.get("id")))
        ] or [None]
        expect(container, f"container {result.stape_container_id} at Stape", f"containers: {rows}")
        assert container is not None
        status = container.get("status")
        status_text = json.dumps(status) if not isinstance(status, str) else status
        expect(
            "running" in status_text.lower() and took <= self.s.stape_deadline_s,
            f"running within {self.s.stape_deadline_s:.0f} s",
            f"status {status_text} after {took:.1f} s",
        )
        t.saw(f"container {result.stape_container_id} running; the saga took {took:.1f} s")

    async def item4(self, t: Trail) -> None:
        result = await self._provision(t)
        t.step("GET gtm fake /_sandbox/containers")
        rows = (await self.sandbox_get("gtm", "/_sandbox/containers"))["data"]
        by_id = {str(c.get("containerId")): c for c in rows}
        for kind, container_id, version in (
            ("web", result.gtm_web_container_id, result.gtm_version_id),
            ("server", result.gtm_server_container_id, result.gtm_server_version_id),
        ):
            container = by_id.get(container_id)
            expect(
                container, f"GTM {kind} container {container_id}", f"containers: {sorted(by_id)}"
            )
            assert container is not None
            expect(
                version in [str(v) for v in container["versions"]]
                and container.get("liveVersionId") != version,
                f"{kind} version {version} created and not published",
                f"versions {container['versions']}, live {container.get('liveVersionId')}",
            )
            t.saw(f"GTM {kind} {container_id} version {version} unpublished")

    async def item5(self, t: Trail) -> None:
        result = await self._provision(t)
        platforms = [s.platform for s in result.snippets]
        expect(
            {"html", "wordpress"} <= set(platforms),
            "snippets for every platform (html, wordpress, …)",
            f"platforms: {platforms}",
        )
        if self.s.browser:
            self.browser = self.browser or await Browser.open()
        if self.browser is None:
            t.saw(f"snippets {platforms}; no Chromium on this runner: not loaded")
            # Worded as CI's refused skips are (scripts/ci_junit_check.py): a CI run must load them.
            raise Skip("missing tool: chromium/Playwright: snippets generated, not loaded")
        assert self.landing is not None
        t.path = "Chromium"
        for snippet in result.snippets:
            t.step(f"serve a page with the {snippet.platform} snippet; open it in Chromium")
            self.landing.page(snippet.content)
            page = await self.browser.browser.new_page()
            try:
                await page.goto(self.landing.browser_url, wait_until="load")
                loaded = await page.evaluate(
                    "() => new Promise(r => { let n = 0; const t = setInterval(() => {"
                    " if (window.trackai || ++n > 40) { clearInterval(t); r(!!window.trackai); }"
                    " }, 250); })"
                )
            finally:
                await page.close()
            expect(
                loaded,
                f"the {snippet.platform} snippet loads track.js (window.trackai)",
                f"window.trackai undefined after the {snippet.platform} snippet loaded",
            )
        html = next(s for s in result.snippets if s.platform == "html")
        self.landing.page(html.content)
        t.saw(f"{len(platforms)} snippets loaded track.js in Chromium: {', '.join(platforms)}")

    async def item6(self, t: Trail) -> None:
        result = await self._provision(t)
        if self.landing is not None and not self.s.landing_url:
            t.step("the landing page carries the html snippet (as the seller pastes it)")
            self.landing.page(next(s.content for s in result.snippets if s.platform == "html"))
        probe = await self.run_check(t, "probe_landing_url")
        expect(probe.status == "ok", "landing probed: ok", f"{probe.status}: {probe.message}")
        pixel = await self.run_check(t, "check_pixel_presence")
        expect(pixel.status == "ok", "pixel found: ok", f"{pixel.status}: {pixel.message}")
        t.saw(f"probe: {probe.message} / pixel: {pixel.message}")

    async def item7(self, t: Trail) -> None:
        answer = await self.run_check(t, "validate_meta_token")
        expect(answer.status == "ok", "status ok", f"{answer.status}: {answer.message}")
        t.saw(answer.message)

    async def _panel_test(self, t: Trail) -> httpx.Response:
        """The Kiwify panel's test webhook, signed with the tenant's secret (sent once)."""
        if self.panel_test is None:
            body = kiwify_sale(f"qa-{self.run_tag}-panel-test", None, panel_test=True)
            t.step("the gateway panel's test webhook")
            self.panel_test = await self.post_sale(t, body)
        else:
            t.step("(the gateway panel's test webhook, already sent by an earlier item)")
        return self.panel_test

    async def item8(self, t: Trail) -> None:
        body = kiwify_sale(f"qa-{self.run_tag}-panel-test", None, panel_test=True)
        answer = await self._panel_test(t)
        expect(
            answer.status_code == 200 and answer.json().get("status") == "ignored",
            "200 ignored (Kiwify panel test, signature verified)",
            f"{answer.status_code} {answer.text[:300]}",
        )
        t.step("same body with a wrong signature")
        forged = await self.http.post(
            f"{self.s.base_url}/api/v1/webhooks/{GATEWAY}/{self.tenant_id}",
            params={"signature": "0" * 40},
            content=body,
            headers={"Content-Type": "application/json"},
        )
        expect(forged.status_code == 401, "401 for a wrong signature", f"{forged.status_code}")
        verdict = await until(
            lambda: self._webhook_verdict(t),
            30,
            "validate_gateway_webhook: ok",
            "the agent never saw the verified webhook",
        )
        t.saw(f"test webhook verified (forged one 401); agent: {verdict.message}")

    async def _webhook_verdict(self, t: Trail) -> agent_pb.RunCheckResponse | None:
        answer = await self.run_check(t, "validate_gateway_webhook")
        return answer if answer.status == "ok" else None

    async def item9(self, t: Trail) -> None:
        t.step(f"ApproveAndPublish run={self.run_id} before any test event (must be refused)")
        try:
            await self.provisioning.ApproveAndPublish(
                prov.ApproveAndPublishRequest(run_id=self.run_id, approved_by=self.s.approver),
                timeout=60,
            )
            raise Failed("publish refused before a test event", "the publish went through")
        except grpc.aio.AioRpcError as exc:
            expect(
                exc.code() == grpc.StatusCode.FAILED_PRECONDITION,
                "FAILED_PRECONDITION before a test event",
                f"{exc.code().name}: {exc.details()}",
            )
        t.step(f"SendTestEvent run={self.run_id}")
        sent = await self.provisioning.SendTestEvent(
            prov.SendTestEventRequest(run_id=self.run_id), timeout=60
        )
        if self.s.meta_sandbox_url:
            events = await self.meta_events(sent.event_id)
            expect(
                events and all(e.get("test_event_code") == self.s.test_event_code for e in events),
                f"the test Purchase at Meta under test code {self.s.test_event_code}",
                f"Meta received {events}",
            )
        t.step(f"ApproveAndPublish run={self.run_id} approved_by='{self.s.approver}'")
        published = await self.provisioning.ApproveAndPublish(
            prov.ApproveAndPublishRequest(
                run_id=self.run_id, approved_by=self.s.approver, note="release gate"
            ),
            timeout=120,
        )
        run = (
            await self.provisioning.GetProvisioningRun(
                prov.GetProvisioningRunRequest(run_id=self.run_id), timeout=30
            )
        ).run
        expect(
            run.approved_by == self.s.approver and run.run_status == prov.RUN_STATUS_PUBLISHED,
            f"published, approved by {self.s.approver}",
            f"{prov.RunStatus.Name(run.run_status)}, approved_by={run.approved_by!r}",
        )
        if self.s.gtm_sandbox_url:
            rows = (await self.sandbox_get("gtm", "/_sandbox/containers"))["data"]
            live = {str(c.get("containerId")): str(c.get("liveVersionId")) for c in rows}
            assert self.result is not None
            expect(
                live.get(self.result.gtm_web_container_id) == published.published_version_id,
                f"web version {published.published_version_id} live at GTM",
                f"live versions {live}",
            )
        t.saw(
            f"test event {sent.event_id} received; published web {published.published_version_id}"
            f" / server {published.published_server_version_id} by {run.approved_by}"
        )

    async def item10(self, t: Trail) -> None:
        assert self.landing is not None
        if self.s.browser:
            self.browser = self.browser or await Browser.open()
        if self.browser is None:
            return await self._collect_by_api(t)
        t.path = "Chromium"
        if self.result is None:
            # Non-destructive runs have no provisioned snippet: track.js is loaded directly.
            self.landing.page(
                f'<script src="{self.s.base_url}/sdk/v1/track.js" data-tenant="{self.tenant_id}"'
                f' data-gateway="{GATEWAY}" data-checkout-domains="pay.kiwify.com.br"></script>'
            )
        url = f"{self.landing.browser_url}curso?fbclid={self.fbclid}&utm_source=facebook"
        t.step(f"Chromium opens {url}")
        context = await self.browser.browser.new_context()
        page = await context.new_page()
        try:
            async with page.expect_response(lambda r: "/collect" in r.url) as hit:
                await page.goto(url, wait_until="load")
            collected = (await hit.value).status
            await page.wait_for_function("() => window.trackai && window.trackai.sessionId")
            self.session_id = str(await page.evaluate("window.trackai.sessionId"))
            href = str(await page.get_attribute("#buy", "href") or "")
            cookies = {c["name"]: c["value"] for c in await context.cookies()}
            self.browser_event_id = str(
                await page.evaluate(
                    f"window.trackai.eventId({json.dumps(self.order_id)}, 'Purchase', '{GATEWAY}')"
                )
            )
        finally:
            await context.close()
        self.fbc = cookies.get("_fbc", "")
        expect(
            200 <= collected < 300,
            "the page view collected (2xx)",
            f"collect answers {collected}",
        )
        expect(
            re.match(FBC_RE.replace("{fbclid}", re.escape(self.fbclid)), self.fbc),
            f"_fbc = fb.1.<13-digit ms>.{self.fbclid}",
            f"_fbc = {self.fbc!r}",
        )
        expect(f"sck={self.session_id}" in href, "the checkout link carries sck", href)
        t.saw(f"collected {collected}; _fbc {self.fbc}; session {self.session_id}")

    async def _collect_by_api(self, t: Trail) -> None:
        """No browser: the page view as track.js posts it (docs/tracking-script.md)."""
        self.session_id = f"taQa{self.run_tag}Session000"
        self.fbc = f"fb.1.{int(time.time() * 1000)}.{self.fbclid}"
        body = {
            "type": "page_view",
            "session_id": self.session_id,
            "visitor_id": secrets.token_hex(32),
            "event_id": secrets.token_hex(12),
            "event_time": int(time.time() * 1000),
            "page_url": f"https://{self.s.landing_host}/curso?fbclid={self.fbclid}",
            "fbclid": self.fbclid,
            "fbc": self.fbc,
        }
        url = f"{self.s.base_url}/api/v1/collect/{self.tenant_id}"
        t.step(f"POST {url} (the page view track.js sends, with the fbclid; no browser here)")
        answer = await self.http.post(
            url,
            content=json.dumps(body),
            headers={
                "Content-Type": "text/plain;charset=UTF-8",
                "Origin": f"https://{self.s.landing_host}",
            },
        )
        expect(
            200 <= answer.status_code < 300,
            "the page view collected (2xx)",
            f"{answer.status_code} {answer.text[:300]}",
        )
        t.saw(f"collected by API ({answer.status_code}); fbc {self.fbc}")

    async def item11(self, t: Trail) -> None:
        answer = await self.post_sale(t, kiwify_sale(self.order_id, self.session_id))
        expect(
            answer.status_code == 200 and answer.json().get("status") == "accepted",
            "200 accepted",
            f"{answer.status_code} {answer.text[:300]}",
        )
        t.step(f"matcher ListMatches tenant={self.tenant_id}: order {self.order_id}")
        match = await until(
            lambda: self.match_of(self.order_id),
            self.s.settle_s,
            "a match for the order",
            f"no match for order {self.order_id}",
        )
        expect(
            match.stage == match_events.MATCH_STAGE_DETERMINISTIC
            and match.session_id == self.session_id,
            f"deterministic match to session {self.session_id}",
            f"{match_events.MatchStage.Name(match.stage)} session {match.session_id!r}",
        )
        t.saw(f"order {self.order_id} matched (deterministic) to {match.session_id}")

    async def item12(self, t: Trail) -> None:
        match = await self.match_of(self.order_id)
        assert match is not None
        if self.browser_event_id:
            t.path = "Chromium + API"
            t.step(
                "Chromium: window.trackai.eventId(order, 'Purchase', 'kiwify') (thank-you pixel)"
            )
        else:
            # No browser here: the id the thank-you pixel computes, by its specification.
            t.step("event_id v1 of (tenant, kiwify, order, Purchase) (docs/schema/event_id.md)")
            self.browser_event_id = event_id(self.tenant_id, GATEWAY, self.order_id, "Purchase")
        expect(
            match.event_id == self.browser_event_id,
            f"the server event's id = the pixel's {self.browser_event_id}",
            f"server {match.event_id}",
        )
        t.step(f"Meta fake /_sandbox/events event_id={match.event_id}")
        events = await until(
            lambda: self.meta_events(match.event_id),
            self.s.settle_s,
            "the Purchase at Meta",
            f"event {match.event_id} not at Meta",
        )
        data = events[0].get("event", events[0])
        expect(
            data["user_data"].get("fbc") == self.fbc,
            f"the server event carries the click's fbc {self.fbc}",
            f"fbc {data['user_data'].get('fbc')!r}",
        )
        t.saw(f"pixel and server share event_id {match.event_id}; fbc {self.fbc}")

    async def item13(self, t: Trail) -> None:
        match = await self.match_of(self.order_id)
        assert match is not None
        await until(
            lambda: self.meta_events(match.event_id),
            self.s.settle_s,
            "the Purchase at Meta",
            f"event {match.event_id} not at Meta",
        )
        # A later sale: once it is at Meta, anything the first could still cause has happened.
        sentinel = f"qa-{self.run_tag}-sentinel"
        await self.post_sale(t, kiwify_sale(sentinel, None))
        later = await until(lambda: self.match_of(sentinel), self.s.settle_s, "a match", sentinel)
        await until(lambda: self.meta_events(later.event_id), self.s.settle_s, "at Meta", sentinel)
        t.step("Meta fake /_sandbox/event-counts for the sale's event_id")
        counts = (
            await self.sandbox_get(
                "meta", "/_sandbox/event-counts", pixel_id=self.s.pixel_id, event_id=match.event_id
            )
        )["data"]
        expect(
            [c["count"] for c in counts] == [1],
            "received by Meta exactly once",
            f"counts {counts}",
        )
        t.step(f"dispatcher ListAttempts + GetEventState event_id={match.event_id}")
        attempts = (
            await self.dispatcher.ListAttempts(
                disp_pb.ListAttemptsRequest(tenant_id=self.tenant_id, event_id=match.event_id),
                timeout=30,
            )
        ).attempts
        state = (
            await self.dispatcher.GetEventState(
                disp_pb.GetEventStateRequest(tenant_id=self.tenant_id, event_id=match.event_id),
                timeout=30,
            )
        ).event
        numbers = sorted(a.attempt_number for a in attempts)
        expect(
            attempts
            and numbers == list(range(1, len(numbers) + 1))
            and sum(a.outcome == disp_pb.ATTEMPT_OUTCOME_SUCCEEDED for a in attempts) == 1
            and state.state == disp_pb.EVENT_STATE_SENT
            and state.attempts == len(attempts),
            "SENT, one succeeded attempt, every attempt recorded (1..n)",
            f"{disp_pb.EventState.Name(state.state)} attempts={state.attempts}, recorded "
            f"{[(a.attempt_number, disp_pb.AttemptOutcome.Name(a.outcome)) for a in attempts]}",
        )
        expect(match.emq >= 6, "EMQ estimate ≥ 6", f"EMQ {match.emq:.1f}")
        t.saw(f"once at Meta; {len(attempts)} attempt(s) recorded; EMQ {match.emq:.1f}")

    async def item14(self, t: Trail) -> None:
        t.path = "API/CLI + Meta fake fault"
        t.step(f"Meta fake: every POST for pixel {self.s.pixel_id} answers 500 (until cleared)")
        fault = await self.http.post(
            self.sandbox("meta") + "/_sandbox/faults",
            json={"kind": "http_500", "pixel_id": self.s.pixel_id, "count": None},
        )
        fault.raise_for_status()
        try:
            for n in range(DEAD_SALES):
                order = f"qa-{self.run_tag}-dead-{n}"
                answer = await self.post_sale(t, kiwify_sale(order, None))
                expect(answer.status_code == 200, "200", f"{answer.status_code} {answer.text}")
                self.dead_orders.append(order)
            t.step("dispatcher ListDeadLetters tenant (wait for every sale)")
            dead = await until(
                self._all_dead, self.s.settle_s * 2, "every sale dead-lettered", "not all dead"
            )
            attempts = (
                await self.dispatcher.ListAttempts(
                    disp_pb.ListAttemptsRequest(
                        tenant_id=self.tenant_id, event_id=dead[0].event_id
                    ),
                    timeout=30,
                )
            ).attempts
            expect(
                sum(a.outcome == disp_pb.ATTEMPT_OUTCOME_RETRYABLE for a in attempts) >= 2
                and all(a.outcome in LADDER_OUTCOMES for a in attempts),
                "the retry ladder climbed (≥ 2 retryable attempts) before the DLQ",
                f"attempts {[disp_pb.AttemptOutcome.Name(a.outcome) for a in attempts]}",
            )
            if self.s.dispatcher_metrics_url:
                # The gauge follows the database every health round (10 s): wait for it.
                t.step(f"GET {self.s.dispatcher_metrics_url} until dead_events ≥ {DEAD_SALES}")
                with contextlib.suppress(Failed):
                    await until(self._dead_gauge, 60, "the gauge", "below the dead count")
        finally:
            t.step("Meta fake: faults cleared (Meta recovers)")
            await self.http.delete(self.sandbox("meta") + "/_sandbox/faults")
        t.step("dispatcher ReplayDeadLetters filter tenant (twice: a double click)")
        for _ in range(2):
            await self.dispatcher.ReplayDeadLetters(
                disp_pb.ReplayDeadLettersRequest(
                    filter=disp_pb.DeadLetterFilter(tenant_id=self.tenant_id),
                    requested_by=self.s.approver,
                    note="release gate",
                ),
                timeout=60,
            )
        ids = [d.event_id for d in dead]
        await until(
            lambda: self._all_at_meta(ids),
            self.s.settle_s,
            "every replayed sale at Meta",
            "not all replayed sales at Meta",
        )
        sentinel = f"qa-{self.run_tag}-after-replay"
        await self.post_sale(t, kiwify_sale(sentinel, None))
        later = await until(lambda: self.match_of(sentinel), self.s.settle_s, "a match", sentinel)
        await until(lambda: self.meta_events(later.event_id), self.s.settle_s, "at Meta", sentinel)
        counts = [len(await self.meta_events(i)) for i in ids]
        expect(counts == [1] * len(ids), "each replayed sale at Meta once", f"counts {counts}")
        t.saw(
            f"{len(ids)} sales: {len(attempts)} attempts each up the ladder, dead "
            f"({dead[0].reason}), replayed twice, each delivered once"
        )

    async def _all_dead(self) -> list[disp_pb.DeadLetter] | None:
        letters = (
            await self.dispatcher.ListDeadLetters(
                disp_pb.ListDeadLettersRequest(
                    filter=disp_pb.DeadLetterFilter(tenant_id=self.tenant_id), page_size=100
                ),
                timeout=30,
            )
        ).dead_letters
        return list(letters) if len(letters) >= len(self.dead_orders) else None

    async def _dead_gauge(self) -> bool:
        self.metrics_at_dlq = (await self.http.get(self.s.dispatcher_metrics_url)).text
        values = [float(v) for _, v in _samples(self.metrics_at_dlq, DEAD_GAUGE)]
        return bool(values) and max(values) >= DEAD_SALES

    async def _all_at_meta(self, ids: list[str]) -> bool:
        return all([await self.meta_events(i) for i in ids])

    async def item15(self, t: Trail) -> None:
        t.path = "promtool + Sentry fake"
        expect(
            self.metrics_at_dlq,
            "the dispatcher's /metrics scraped while the DLQ held the dead sales",
            "no scrape (QA_DISPATCHER_METRICS_URL unset or item 14 did not reach the DLQ)",
        )
        t.step(
            "promtool test rules: the alarms of monitoring/alarms.yaml against the scraped "
            "trackai_dispatcher_dead_events"
        )
        fired = await asyncio.to_thread(self._alarm_fires, self.metrics_at_dlq)
        t.saw(fired)
        sentry = self.sandbox("sentry")
        t.step("Meta fake: the next POST answers 'token expired' (190/463); one sale")
        await self.http.post(
            self.sandbox("meta") + "/_sandbox/faults",
            json={"kind": "token_expired", "pixel_id": self.s.pixel_id, "count": 1},
        )
        await self.post_sale(t, kiwify_sale(f"qa-{self.run_tag}-token", None))
        t.step("Sentry fake /_sandbox/events: the dispatcher's error")
        event = await until(
            lambda: self._sentry_event(sentry, "Meta rejected the access token"),
            self.s.settle_s,
            "the dispatcher's error at Sentry",
            "no Sentry event",
        )
        trace_id = str(event.get("contexts", {}).get("trace", {}).get("trace_id", ""))
        t.saw(f"Sentry got '{_sentry_message(event)[:80]}' (trace {trace_id or '-'})")

    async def _sentry_event(self, url: str, text: str) -> dict[str, Any] | None:
        events: list[dict[str, Any]] = (await self.http.get(url + "/_sandbox/events")).json()[
            "events"
        ]
        return next((e for e in events if text in _sentry_message(e)), None)

    def _alarm_fires(self, exposition: str) -> str:
        """Evaluate the alarm rules with promtool over the scraped samples, held for longer
        than the alarm's ``for:``: TrackaiDlqDepth must fire."""
        promtool = shutil.which(self.s.promtool)
        if promtool is None:
            raise Failed(
                "promtool available", f"{self.s.promtool} not found (apt-get install prometheus)"
            )
        alarms = yaml.safe_load(Path(self.s.alarms_file).read_text())
        rules = [
            {
                "alert": a["alert"],
                "expr": a["expr"].replace("$THRESHOLD", str(a["threshold"])),
                "for": a["for"],
                "labels": {"severity": a["severity"]},
            }
            for a in alarms["alarms"]
        ]
        series = [
            {"series": name, "values": f"{value}x15"}
            for name, value in _samples(exposition, DEAD_GAUGE)
        ]
        expect(series, "trackai_dispatcher_dead_events exported", "the series is not in /metrics")
        dlq = next(a for a in alarms["alarms"] if a["alert"] == "TrackaiDlqDepth")
        test = {
            "rule_files": ["rules.yaml"],
            "evaluation_interval": "1m",
            "tests": [
                {
                    "interval": "1m",
                    "input_series": series,
                    "alert_rule_test": [
                        {
                            "eval_time": "10m",
                            "alertname": "TrackaiDlqDepth",
                            "exp_alerts": [{"exp_labels": {"severity": dlq["severity"]}}],
                        }
                    ],
                }
            ],
        }
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "rules.yaml").write_text(
                yaml.safe_dump({"groups": [{"name": alarms["group"], "rules": rules}]})
            )
            Path(tmp, "test.yaml").write_text(yaml.safe_dump(test))
            done = subprocess.run(
                [promtool, "test", "rules", "test.yaml"],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        expect(
            done.returncode == 0,
            "TrackaiDlqDepth fires on the scraped dead-event count",
            (done.stdout + done.stderr).strip()[-1500:],
        )
        values = ", ".join(f"{name}={value}" for name, value in _samples(exposition, DEAD_GAUGE))
        return f"TrackaiDlqDepth fires on the scraped {values}"


def _samples(exposition: str, metric: str) -> list[tuple[str, str]]:
    """``(series with labels, value)`` of one metric in a Prometheus text exposition."""
    found = []
    for line in exposition.splitlines():
        if line.startswith(metric) and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            if name.split("{", 1)[0] == metric:
                found.append((name, value))
    return found


def _sentry_message(event: dict[str, Any]) -> str:
    logentry = event.get("logentry") or {}
    return str(logentry.get("formatted") or logentry.get("message") or event.get("message") or "")
