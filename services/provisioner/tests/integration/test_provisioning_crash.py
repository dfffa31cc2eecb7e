"""A real crash: the provisioner process is killed (SIGKILL) while polling Stape; a new process
resumes the same run where it stopped and creates nothing twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest

from trackai.provisioner.v1 import provisioner_service_pb2 as pb
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as pb_grpc
from trackai_kit.grpc import client_channel, local_dev_token
from trackai_kit.postgres import asyncpg_dsn
from trackai_testing.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
TOKEN = local_dev_token("operator")


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "trackai_provisioner", "serve"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


async def _wait_ready(channel: grpc.aio.Channel) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            await pb_grpc.TenantRegistryServiceStub(channel).ListTenants(
                pb.ListTenantsRequest(), timeout=1
            )
            return
        except grpc.aio.AioRpcError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _outbox_pending(database_url: str) -> tuple[int, int]:
    """(rows, rows not yet published) in provisioner.outbox."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS total, count(*) FILTER (WHERE published_at IS NULL) AS pending "
            "FROM provisioner.outbox"
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row["total"]), int(row["pending"])


async def test_killed_process_resumes_the_run(
    database_url: str,
    sandboxes: Any,
    saga_env: dict[str, str],
    tmp_path: Path,
    amqp_url: str,
    amqp_prefix: str,
) -> None:
    log = tmp_path / "provisioner.log"
    grpc_port = free_port()
    env = {
        **os.environ,
        **saga_env,
        "DATABASE_URL": database_url,
        "PROVISIONER_GRPC_PORT": str(grpc_port),
        "PROVISIONER_HTTP_PORT": str(free_port()),
        "GRPC_CLIENT_TOKEN": TOKEN,
        "LOG_JSON": "true",
        "AMQP_URL": amqp_url,
        "AMQP_PREFIX": amqp_prefix,
    }
    sandboxes.control(sandboxes.stape, "POST", "/_sandbox/behaviour", json={"never_running": True})
    process = _start(env, log)
    channel = client_channel(f"127.0.0.1:{grpc_port}", TOKEN)
    try:
        await _wait_ready(channel)
        registry = pb_grpc.TenantRegistryServiceStub(channel)
        await registry.CreateTenant(pb.CreateTenantRequest(name="Acme", slug="acme"))
        await registry.CreateFunnel(
            pb.CreateFunnelRequest(tenant_ref="acme", name="Launch", slug="launch")
        )
        await registry.SetMetaCredential(
            pb.SetMetaCredentialRequest(
                tenant_ref="acme", pixel_id="1234567890", access_token="sandbox-token"
            )
        )
        # The webhook lock: the stub of ingestion reports a verified Kiwify webhook.
        await registry.SetGatewayCredential(
            pb.SetGatewayCredentialRequest(
                tenant_ref="acme", gateway="kiwify", secret="kiwify-webhook-token"
            )
        )
        stream = pb_grpc.ProvisioningServiceStub(channel).ProvisionTenant(
            pb.ProvisionTenantRequest(tenant_ref="acme")
        )
        seen: list[pb.ProvisionTenantResponse] = []
        async for message in stream:
            seen.append(message)
            if message.step == "stape_running" and "Stape status" in message.detail:
                break  # polling: the Stape container exists and is not running yet
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        run_id = seen[-1].run_id
    finally:
        await channel.close()
        if process.poll() is None:
            process.kill()

    # The container finishes deploying while we are down; a new process picks the run up.
    sandboxes.control(sandboxes.stape, "POST", "/_sandbox/behaviour", json={"never_running": False})
    process = _start(env, log)
    channel = client_channel(f"127.0.0.1:{grpc_port}", TOKEN)
    try:
        await _wait_ready(channel)
        messages = [
            m
            async for m in pb_grpc.ProvisioningServiceStub(channel).ProvisionTenant(
                pb.ProvisionTenantRequest(tenant_ref="acme")
            )
        ]
        # `serve` relays the progress StatusUpdates of both processes from the outbox.
        deadline = time.monotonic() + 15
        while (counts := await _outbox_pending(database_url))[1] and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        await channel.close()
        process.send_signal(signal.SIGTERM)
        process.wait(15)
    assert counts[0] > 12 and counts[1] == 0, counts
    assert messages[0].detail.startswith(f"resuming run {run_id}")
    assert {m.run_id for m in messages} == {run_id}
    done_earlier = [m.step for m in messages if m.detail.startswith("done earlier")]
    assert done_earlier == ["validate_meta", "gtm_server_container", "stape_container"]
    assert any(m.step == "stape_running" and m.detail == "attempt 2" for m in messages)
    assert messages[-1].run_status == pb.RUN_STATUS_AWAITING_APPROVAL
    assert len(sandboxes.stape_containers()) == 1
    assert len(sandboxes.gtm_containers()) == 2
    assert len(sandboxes.cname_records()) == 1
    # Two processes' worth of logs, and no credential in them.
    logged = log.read_text()
    assert "provisioning run" in logged
    for secret in ("sandbox-token", "sandbox-stape-key", "sandbox-cloudflare-token", "app-secret"):
        assert secret not in logged, secret
