"""Fixtures of the agent's integration tests: the Meta fake, the scripted provisioner/ingestion
gRPC server and the six tools wired on real adapters."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import httpx
import pytest

from trackai.agent.v1 import agent_service_pb2 as agent_pb
from trackai.agent.v1 import agent_service_pb2_grpc as agent_grpc
from trackai_agent.adapters.grpc_clients import GrpcIngestion, GrpcProvisioner
from trackai_agent.adapters.llm import OpenAiChat
from trackai_agent.adapters.meta_graph import HttpxMetaGraph
from trackai_agent.adapters.renderer import ChromiumRenderer
from trackai_agent.adapters.repository import PostgresSessionStore
from trackai_agent.adapters.support_webhook import SupportWebhookRelay
from trackai_agent.adapters.web import FetchLimits, SafeFetcher
from trackai_agent.bootstrap import AGENT_SERVICE
from trackai_agent.entrypoints.grpc_access import POLICY as AGENT_POLICY
from trackai_agent.entrypoints.grpc_agent import AgentServicer
from trackai_agent.service_layer.conversation import Conversation, ConversationConfig
from trackai_agent.service_layer.tools import SetupTools, ToolConfig
from trackai_kit.grpc import client_channel, start_grpc_server
from trackai_kit.settings import GrpcSettings, local_dev_callers, local_dev_token
from trackai_sandbox.llm import DEMO_KEY as DEMO_LLM_KEY
from trackai_sandbox.llm import build_app as build_llm
from trackai_sandbox.meta import build_app as build_meta
from trackai_sandbox.server import BackgroundServer
from trackai_sandbox.settings import SandboxSettings
from trackai_sandbox.testing import DEMO_APP_TOKEN, MetaSandboxClient
from trackai_testing.browser import CHROMIUM

from .harness import TOKEN, Backend, TestCa, WebServer, make_ca, start_backend, web_server

APP_ID = DEMO_APP_TOKEN.partition("|")[0]


@pytest.fixture(scope="session")
def meta_server() -> Iterator[str]:
    with BackgroundServer(build_meta(SandboxSettings())) as server:
        yield server.base_url


@pytest.fixture
def meta(meta_server: str) -> Iterator[MetaSandboxClient]:
    with httpx.Client(base_url=meta_server, timeout=10) as http:
        client = MetaSandboxClient(http)
        client.reset()
        yield client


@dataclass
class Wired:
    backend: Backend
    channel: grpc.aio.Channel
    target: str
    meta_url: str
    ca: TestCa

    def tools(self, **limits: Any) -> SetupTools:
        fetch = FetchLimits(
            allow_loopback=limits.pop("allow_loopback", True),
            ca_file=str(self.ca.ca_file),
            **limits,
        )
        fetcher = SafeFetcher(fetch)
        return SetupTools(
            GrpcProvisioner(self.channel),
            GrpcIngestion(self.channel),
            HttpxMetaGraph(self.meta_url, "v25.0", DEMO_APP_TOKEN),
            fetcher,
            ChromiumRenderer(CHROMIUM, fetcher.guard),
            ToolConfig(meta_app_id=APP_ID, ingestion_public_url="https://ingest.example"),
        )


@pytest.fixture
async def wired(meta: MetaSandboxClient, meta_server: str, tmp_path: Path) -> AsyncIterator[Wired]:
    backend = Backend(tenant_id=str(uuid.uuid4()))
    server = await start_backend(backend)
    target = f"127.0.0.1:{server.port}"
    channel = client_channel(target, TOKEN)
    try:
        yield Wired(backend, channel, target, meta_server, make_ca(tmp_path))
    finally:
        await channel.close()
        await server.stop(0)


@pytest.fixture(scope="session")
def llm_server() -> Iterator[str]:
    with BackgroundServer(build_llm(SandboxSettings())) as server:
        yield server.base_url


@pytest.fixture
def llm(llm_server: str) -> Iterator[LlmControl]:
    with httpx.Client(base_url=llm_server, timeout=10) as http:
        http.post("/_sandbox/reset").raise_for_status()
        yield LlmControl(http, f"{llm_server}/v1")


@dataclass
class LlmControl:
    http: httpx.Client
    base_url: str

    def script(self, *steps: dict[str, Any]) -> None:
        self.http.post("/_sandbox/script", json={"steps": list(steps)}).raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        return list(self.http.get("/_sandbox/requests").json()["data"])


@dataclass
class Agent:
    stub: agent_grpc.AgentServiceStub
    store: PostgresSessionStore
    pool: asyncpg.Pool
    wired: Wired
    sink: WebServer

    async def start(self) -> agent_pb.StartSessionResponse:
        return await self.stub.StartSession(
            agent_pb.StartSessionRequest(
                tenant_id=self.wired.backend.tenant_id, started_by="user-7", funnel_slug="launch"
            )
        )

    async def say(self, session_id: str, text: str) -> agent_pb.SendMessageResponse:
        return await self.stub.SendMessage(
            agent_pb.SendMessageRequest(
                tenant_id=self.wired.backend.tenant_id, session_id=session_id, content=text
            )
        )

    def relay(self) -> SupportWebhookRelay:
        return SupportWebhookRelay(self.pool, self.sink.base_url + "/hooks/support")


@pytest.fixture
def make_agent(
    wired: Wired, database_url: str, pg_pool: Any, llm: LlmControl
) -> Callable[..., Any]:
    """``async with make_agent(llm=True) as agent``: AgentService on a real gRPC server."""

    @contextlib.asynccontextmanager
    async def make(*, use_llm: bool = False, **config: Any) -> AsyncIterator[Agent]:
        pool = await pg_pool(database_url, schema="agent")
        store = PostgresSessionStore(pool)
        model = OpenAiChat(llm.base_url, DEMO_LLM_KEY, "sandbox", 2.0) if use_llm else None
        tools = wired.tools()
        conversation = Conversation(
            store,
            tools,
            model,
            ConversationConfig(
                transcript_url_template="https://console.example/operador/conversas/{session_id}",
                support_webhook=True,
                **config,
            ),
        )
        server = await start_grpc_server(
            GrpcSettings(port=0, callers=local_dev_callers()),
            partial(
                agent_grpc.add_AgentServiceServicer_to_server,
                AgentServicer(conversation, store, tools),
            ),
            [AGENT_SERVICE],
            AGENT_POLICY,
        )
        # The console drives the agent.
        channel = client_channel(f"127.0.0.1:{server.port}", local_dev_token("console"))
        try:
            with web_server() as sink:
                yield Agent(agent_grpc.AgentServiceStub(channel), store, pool, wired, sink)
        finally:
            await channel.close()
            await server.stop(0)
            if model is not None:
                await model.aclose()

    return make
