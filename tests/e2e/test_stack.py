"""Every service process starts, reports healthy and ready, serves gRPC health, and stops cleanly."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from trackai_testing.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SERVE = ["provisioner", "ingestion", "matcher", "dispatcher", "agent", "console"]
CONSUME = ["matcher", "dispatcher"]


async def _grpc_health(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        resp = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        return int(resp.status)


async def test_all_services_become_healthy_and_ready(stack) -> None:
    procs = [stack.start(s, grpc=(s != "console")) for s in SERVE]
    procs += [stack.start(s, "consume", grpc=False) for s in CONSUME]
    for proc in procs:
        stack.wait_ready(proc)
    for proc in procs:
        health = httpx.get(proc.http + "/health").json()
        assert health["status"] == "ok"
        ready = httpx.get(proc.http + "/ready").json()
        assert ready["status"] == "ready" and all(v == "ok" for v in ready["checks"].values())
        assert "postgres" in ready["checks"]
        if proc.grpc_port:
            assert await _grpc_health(proc.grpc_port) == health_pb2.HealthCheckResponse.SERVING
    # Consumers need the broker to be ready; ingestion does not (it accepts into its outbox).
    assert "rabbitmq" in httpx.get(stack.procs["matcher-consume"].http + "/ready").json()["checks"]
    assert (
        "rabbitmq" not in httpx.get(stack.procs["ingestion-serve"].http + "/ready").json()["checks"]
    )


def test_sigterm_stops_a_service_cleanly(stack) -> None:
    proc = stack.start("ingestion")
    stack.wait_ready(proc)
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.popen.wait(timeout=20) == 0
    lines = [json.loads(l) for l in proc.logs().splitlines() if l.startswith("{")]
    events = [l.get("event") for l in lines]
    assert "listening" in events and "stopped" in events


def _refused_start(service: str, env: dict[str, str]) -> str:
    """Start ``service`` and expect the invalid-configuration exit; its stderr."""
    result = subprocess.run(
        [sys.executable, "-m", f"trackai_{service}", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    return result.stderr


def test_unsafe_configuration_refuses_to_start(stack) -> None:
    # Without TRACKAI_ENV a process is in production: a development token is refused.
    bare = {k: v for k, v in stack.env.items() if k != "TRACKAI_ENV"}
    bare["GRPC_CLIENT_TOKEN"] = "local-dev-ingestion-token"
    assert "GRPC_CLIENT_TOKEN" in _refused_start("ingestion", bare)
    env = {
        **stack.env,
        "TRACKAI_ENV": "production",
        "GRPC_CLIENT_TOKEN": "local-dev-provisioner-token",
        "GRPC_TLS_BY_MESH": "true",
    }
    assert "GRPC_CLIENT_TOKEN" in _refused_start("provisioner", env)
    env["GRPC_CLIENT_TOKEN"] = secrets.token_hex(32)
    env["GRPC_CALLER_TOKENS"] = '{"operator": "' + "ab" * 32 + '"}'
    assert "TRACKAI_ENCRYPTION_KEYS" in _refused_start("provisioner", env)


def test_ingestion_starts_and_stays_ready_while_the_broker_is_down(stack) -> None:
    closed = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    ingestion = stack.start("ingestion", AMQP_URL=closed)
    stack.wait_ready(ingestion)
    matcher = stack.start("matcher", "consume", grpc=False, AMQP_URL=closed)
    time_limit = time.monotonic() + 5
    while time.monotonic() < time_limit:
        assert matcher.popen.poll() is None, matcher.logs()
        time.sleep(0.5)
    resp = httpx.get(matcher.http + "/ready")
    assert resp.status_code == 503 and resp.json()["checks"]["rabbitmq"] != "ok"
