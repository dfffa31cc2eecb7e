"""`python -m trackai_agent serve` as deployed: AgentService registered on its gRPC port, the tools
wired from settings (provisioner/ingestion targets, Meta and LLM base URLs), and the process's own
relay delivering an escalation to the support webhook."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from trackai.agent.v1 import agent_service_pb2 as pb
from trackai.agent.v1 import agent_service_pb2_grpc as pb_grpc
from trackai_kit.grpc import client_channel
from trackai_kit.settings import local_dev_token
from trackai_sandbox.llm import DEMO_KEY as DEMO_LLM_KEY
from trackai_sandbox.testing import MetaSandboxClient
from trackai_testing.ports import free_port

from .conftest import LlmControl, Wired
from .harness import PIXEL, web_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    async with httpx.AsyncClient(timeout=1.0) as http:
        for _ in range(200):
            assert proc.poll() is None, log.read_text()
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(log.read_text())


async def test_serve_answers_with_the_model_and_delivers_escalations(
    wired: Wired,
    llm: LlmControl,
    meta: MetaSandboxClient,
    database_url: str,
    tmp_path: Path,
) -> None:
    meta.register_token("expired-token", state="expired", pixel_ids=[PIXEL])
    wired.backend.meta_token = "expired-token"
    http_port, grpc_port = free_port(), free_port()
    with web_server() as sink:
        env: dict[str, Any] = {
            **os.environ,
            "TRACKAI_ENV": "test",
            "DATABASE_URL": database_url,
            "AGENT_HTTP_PORT": str(http_port),
            "AGENT_GRPC_PORT": str(grpc_port),
            "PROVISIONER_GRPC_TARGET": wired.target,
            "INGESTION_GRPC_TARGET": wired.target,
            "META_GRAPH_URL": wired.meta_url,
            "AGENT_LLM_BASE_URL": llm.base_url,
            "AGENT_LLM_API_KEY": DEMO_LLM_KEY,
            "AGENT_SUPPORT_WEBHOOK_URL": sink.base_url + "/slack",
            "LOG_JSON": "true",
        }
        log = tmp_path / "agent.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "trackai_agent", "serve"],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        channel = client_channel(f"127.0.0.1:{grpc_port}", local_dev_token("console"))
        try:
            await wait_ready(proc, f"http://127.0.0.1:{http_port}/ready", log)
            stub = pb_grpc.AgentServiceStub(channel)
            tenant = wired.backend.tenant_id
            session = (
                await stub.StartSession(pb.StartSessionRequest(tenant_id=tenant, started_by="u1"))
            ).session
            answers = [
                await stub.SendMessage(
                    pb.SendMessageRequest(tenant_id=tenant, session_id=session.id, content="oi")
                )
                for _ in range(3)
            ]
            for _ in range(100):
                if sink.received:
                    break
                await asyncio.sleep(0.1)
        finally:
            await channel.close()
            proc.terminate()
            proc.wait(timeout=20)
    # Unscripted, the fake model calls the offered tool and repeats the verdict's message.
    tool_entries = [e for e in answers[0].entries if e.role == pb.ROLE_TOOL]
    assert [(e.tool_name, e.tool_status) for e in tool_entries] == [
        ("validate_meta_token", "error")
    ]
    assert answers[0].entries[-1].content.startswith("O token do Meta expirou")
    assert answers[2].session.status == pb.SESSION_STATUS_ESCALATED
    [delivery] = sink.received
    assert delivery["path"] == "/slack"
    assert delivery["body"]["summary"]["session_id"] == session.id
    assert "expired-token" not in log.read_text()
