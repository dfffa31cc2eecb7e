"""The state of one QA checklist run, shared by its items (``setup_items``, ``tracking_items``,
``resilience_items``), with the service stubs and the moves several items make."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Any

import httpx
from google.protobuf.timestamp_pb2 import Timestamp

from trackai.agent.v1 import agent_service_pb2 as agent_pb
from trackai.agent.v1 import agent_service_pb2_grpc as agent_grpc
from trackai.dispatcher.v1 import dispatcher_service_pb2_grpc as disp_grpc
from trackai.matcher.v1 import matcher_service_pb2 as match_pb
from trackai.matcher.v1 import matcher_service_pb2_grpc as match_grpc
from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as prov_grpc
from trackai_cli.core import Context
from trackai_cli.qa.harness import (
    FUNNEL,
    GATEWAY,
    Browser,
    Landing,
    Skip,
    Trail,
)
from trackai_cli.qa.settings import QaSettings


class ChecklistRun:
    """State shared by the items of one run, in order: the tenant, its provisioning run, the
    click's session, the sale; with the service stubs and the moves several items make."""

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
