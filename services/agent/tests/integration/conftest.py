"""Fixtures of the agent's integration tests: the Meta fake, the scripted provisioner/ingestion
gRPC server and the six tools wired on real adapters."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from trackai_agent.adapters.grpc_clients import GrpcIngestion, GrpcProvisioner
from trackai_agent.adapters.meta_graph import HttpxMetaGraph
from trackai_agent.adapters.renderer import ChromiumRenderer
from trackai_agent.adapters.web import FetchLimits, SafeFetcher
from trackai_agent.service_layer.tools import SetupTools, ToolConfig
from trackai_kit.grpc import client_channel
from trackai_sandbox.meta import build_app as build_meta
from trackai_sandbox.server import BackgroundServer
from trackai_sandbox.settings import SandboxSettings
from trackai_sandbox.testing import DEMO_APP_TOKEN, MetaSandboxClient

from .harness import TOKEN, Backend, TestCa, make_ca, start_backend

CHROMIUM = "/usr/bin/chromium"
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
