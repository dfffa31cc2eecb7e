"""The setup agent against the real services: provisioner (on the Meta, Cloudflare, Stape and GTM
fakes), ingestion and the agent as processes. A seller's guided session goes from the Meta token
to the test event through the real RPCs (GetTenantView, GetMetaDestination, GetWebhookActivity after a signed
Kiwify test webhook, GetProvisioningRun snippets pasted into a local landing page, SendTestEvent
reaching the Meta fake with the funnel's test code), and the publish it unlocks succeeds."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.e2e.conftest import TOKEN, Stack
from trackai.agent.v1 import agent_service_pb2 as agent_pb
from trackai.agent.v1 import agent_service_pb2_grpc as agent_grpc
from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as prov_grpc
from trackai_kit.grpc import client_channel
from trackai_sandbox import cloudflare, gtm, stape
from trackai_sandbox.meta import build_app as build_meta
from trackai_sandbox.server import BackgroundServer
from trackai_sandbox.settings import SandboxSettings

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
KIWIFY_TEST = ROOT / "services/ingestion/tests/fixtures/gateways/kiwify-1.json"
KIWIFY_TOKEN = "e2e-kiwify-token"
PIXEL_ID = "1234567890"
ZONE = "trackai.test"


@pytest.fixture
def fakes() -> Iterator[dict[str, str]]:
    settings = SandboxSettings()
    with contextlib.ExitStack() as servers:
        meta = servers.enter_context(BackgroundServer(build_meta(settings)))
        cf = servers.enter_context(
            BackgroundServer(
                cloudflare.build_app(settings, cloudflare.CloudflareFakeSettings(zone_name=ZONE))
            )
        )
        st = servers.enter_context(
            BackgroundServer(
                stape.build_app(
                    settings,
                    stape.StapeFakeSettings(ready_after_s=0.2, dns_resolver_url=cf.base_url),
                )
            )
        )
        gt = servers.enter_context(BackgroundServer(gtm.build_app(settings, gtm.GtmFakeSettings())))
        with httpx.Client(base_url=gt.base_url) as http:
            http.post("/_sandbox/quota", json={"qps": 1000}).raise_for_status()
        yield {
            "META_GRAPH_URL": meta.base_url,
            "CF_BASE_DOMAIN": ZONE,
            "CLOUDFLARE_API_URL": f"{cf.base_url}/client/v4",
            "CLOUDFLARE_API_TOKEN": cloudflare.DEMO_TOKEN,
            "CLOUDFLARE_ZONE_ID": cloudflare.DEMO_ZONE_ID,
            "STAPE_API_URL": st.base_url,
            "STAPE_API_KEY": stape.DEMO_KEY,
            "GTM_API_URL": gt.base_url,
            "GTM_ACCOUNT_ID": gtm.DEMO_ACCOUNT_ID,
            "GTM_CREDENTIALS_JSON": "sandbox-access-token",
            "GTM_REQUESTS_PER_SECOND": "1000",
            "PROVISIONING_POLL_INTERVAL_S": "0.1",
            "PROVISIONING_STAPE_TIMEOUT_S": "20",
            "PROVISIONING_DOMAIN_TIMEOUT_S": "20",
        }


class Landing:
    """A local landing page whose HTML the test replaces (the seller pasting the snippet)."""

    def __init__(self) -> None:
        self.html = "<!doctype html><html><head><title>Curso</title></head><body></body></html>"
        app = Starlette(routes=[Route("/", self._page)])
        self._server = BackgroundServer(app)

    async def _page(self, request: Request) -> HTMLResponse:
        return HTMLResponse(self.html)

    def __enter__(self) -> Landing:
        self._server.start()
        self.url = self._server.base_url + "/"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


async def test_guided_session_reaches_publish_on_the_real_services(
    stack: Stack, fakes: dict[str, str]
) -> None:
    stack.env.update(fakes)
    provisioner = stack.start("provisioner")
    stack.wait_ready(provisioner)
    stack.env["PROVISIONER_GRPC_TARGET"] = f"127.0.0.1:{provisioner.grpc_port}"
    ingestion = stack.start("ingestion")
    stack.wait_ready(ingestion)
    stack.env["INGESTION_GRPC_TARGET"] = f"127.0.0.1:{ingestion.grpc_port}"
    agent = stack.start(
        "agent",
        AGENT_FETCH_ALLOW_LOOPBACK="true",
        AGENT_WEBHOOK_BASE_URL=ingestion.http,
    )
    stack.wait_ready(agent)

    prov_channel = client_channel(stack.env["PROVISIONER_GRPC_TARGET"], TOKEN)
    agent_channel = client_channel(f"127.0.0.1:{agent.grpc_port}", TOKEN)
    registry = prov_grpc.TenantRegistryServiceStub(prov_channel)
    provisioning = prov_grpc.ProvisioningServiceStub(prov_channel)
    chat = agent_grpc.AgentServiceStub(agent_channel)
    try:
        with Landing() as landing:
            tenant = (
                await registry.CreateTenant(prov.CreateTenantRequest(name="Loja", slug="loja"))
            ).tenant
            await registry.CreateFunnel(
                prov.CreateFunnelRequest(
                    tenant_ref=tenant.id,
                    name="Lançamento",
                    slug="launch",
                    landing_url=landing.url,
                    checkout_domains=["pay.kiwify.com.br"],
                    test_event_code="TEST4242",
                )
            )
            await registry.SetGatewayCredential(
                prov.SetGatewayCredentialRequest(
                    tenant_ref=tenant.id, gateway="kiwify", secret=KIWIFY_TOKEN
                )
            )
            await registry.SetMetaCredential(
                prov.SetMetaCredentialRequest(
                    tenant_ref=tenant.id, pixel_id=PIXEL_ID, access_token="sandbox-token"
                )
            )
            session = (
                await chat.StartSession(
                    agent_pb.StartSessionRequest(
                        tenant_id=tenant.id, started_by="seller-1", funnel_slug="launch"
                    )
                )
            ).session

            async def say(text: str) -> agent_pb.SendMessageResponse:
                return await chat.SendMessage(
                    agent_pb.SendMessageRequest(
                        tenant_id=tenant.id, session_id=session.id, content=text
                    )
                )

            def tools(answer: agent_pb.SendMessageResponse) -> list[tuple[str, str]]:
                return [
                    (e.tool_name, e.tool_status)
                    for e in answer.entries
                    if e.role == agent_pb.ROLE_TOOL
                ]

            # No webhook yet: the setup is locked at the webhook step, with the exact URL.
            locked = await say("começar")
            assert tools(locked) == [
                ("validate_meta_token", "ok"),
                ("validate_gateway_webhook", "error"),
            ]
            url = f"{ingestion.http}/api/v1/webhooks/kiwify/{tenant.id}"
            assert url in locked.entries[-1].content
            assert locked.session.setup_locked

            # The seller clicks "Enviar teste" in Kiwify's panel, first with another token
            # configured there (refused), then with the right one (a signed test payload).
            raw = KIWIFY_TEST.read_bytes()
            for token, status in (("a-token-from-another-webhook", 401), (KIWIFY_TOKEN, 200)):
                signature = hmac.new(token.encode(), raw, hashlib.sha1).hexdigest()
                async with httpx.AsyncClient() as http:
                    sent = await http.post(
                        url,
                        content=raw,
                        params={"signature": signature},
                        headers={"Content-Type": "application/json"},
                    )
                assert sent.status_code == status, sent.text
                if status == 401:
                    mismatch = await say("mandei o teste")
                    assert tools(mismatch) == [("validate_gateway_webhook", "error")]
                    assert "o token do webhook da Kiwify não confere" in (
                        mismatch.entries[-1].content
                    )

            # Provisioned through the real saga on the fakes, then the seller asks again.
            stream = provisioning.ProvisionTenant(
                prov.ProvisionTenantRequest(tenant_ref=tenant.id, funnel_slug="launch")
            )
            progress = [message async for message in stream]
            assert progress[-1].run_status == prov.RUN_STATUS_AWAITING_APPROVAL, progress[-1]
            run_id = progress[-1].run_id
            html_snippet = next(
                s.content for s in progress[-1].result.snippets if s.platform == "html"
            )

            unlocked = await say("mandei o teste da Kiwify")
            # Unlocked; the page has no tracking yet (a warning), then the code to paste.
            assert tools(unlocked) == [
                ("validate_gateway_webhook", "ok"),
                ("probe_landing_url", "warning"),
                ("generate_tracking_snippet", "ok"),
            ]
            # The seller pastes the html snippet into the page's <head>.
            landing.html = landing.html.replace("</head>", html_snippet + "</head>")
            done = await say("colei o código")
            assert tools(done) == [("check_pixel_presence", "ok"), ("send_test_capi_event", "ok")]
            assert done.session.step == "done" and not done.session.setup_locked
            [event_id] = [e.event_id for e in done.entries if e.event_id]

            published = await provisioning.ApproveAndPublish(
                prov.ApproveAndPublishRequest(run_id=run_id, approved_by="seller-1")
            )
            assert published.run_status == prov.RUN_STATUS_PUBLISHED
            exported = json.loads(
                (
                    await chat.ExportTranscript(
                        agent_pb.ExportTranscriptRequest(tenant_id=tenant.id, session_id=session.id)
                    )
                ).json
            )
    finally:
        await prov_channel.close()
        await agent_channel.close()
    run = exported["entries"]
    assert exported["session"]["tenant_id"] == tenant.id
    assert any(e["event_id"] == event_id for e in run)
    text = json.dumps(exported)
    assert "sandbox-token" not in text and KIWIFY_TOKEN not in text
