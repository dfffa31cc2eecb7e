"""The whole pipeline as deployed, for the reliability scenarios: the provisioner (tenant
registry), ingestion, the matcher's and the dispatcher's consumers as real processes on a migrated
test database and a private AMQP prefix, with the Meta fake on a free port."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.conftest import ServiceProcess, Stack, meta, stack  # noqa: F401 - fixtures
from tests.e2e.test_purchase_flow import META_TOKEN, PIXEL_ID, _kiwify_webhook, _trackai
from trackai_sandbox.testing import MetaSandboxClient

from .accounting import Ledger

KIWIFY_TOKEN = "reliability-kiwify-token"
#: Processes started at once on a shared two-core machine.
READY_S = 150.0
#: A short ladder (and a short batch deadline), so an event Meta keeps failing is dead in seconds.
DISPATCH_SETTINGS = {
    "DISPATCHER_BATCH_DEADLINE_MS": "50",
    "DISPATCHER_RETRY_DELAYS_MS": "200,200",
    # A breaker that opened on a failing Meta probes again within seconds.
    "DISPATCHER_BREAKER_COOLDOWN_S": "2",
}


@dataclass
class Pipeline:
    stack: Stack
    meta: MetaSandboxClient
    tenant_id: str
    ingestion: ServiceProcess
    ledger: Ledger

    def sale(self, order_id: str, *, session_id: str = "taNoSession0000000000") -> bytes:
        """Kiwify's real approved-sale payload for ``order_id``, as of now."""
        return _kiwify_webhook(order_id, session_id)

    def sign(self, body: bytes) -> str:
        return hmac.new(KIWIFY_TOKEN.encode(), body, hashlib.sha1).hexdigest()

    def post(self, http: httpx.Client, body: bytes, signature: str | None = None) -> httpx.Response:
        """POST a Kiwify webhook (signed with the tenant's token unless ``signature``); a 200
        goes into the ledger: from then on the sale must be at Meta once, or visibly dead."""
        signature = self.sign(body) if signature is None else signature
        answer = http.post(
            f"{self.ingestion.http}/api/v1/webhooks/kiwify/{self.tenant_id}?signature={signature}",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        if answer.status_code == 200 and answer.json()["status"] == "accepted":
            self.ledger.ack(json.loads(body)["order_id"])
        return answer

    def restart(
        self, name: str, command: str, *, kill: bool = True, grpc: bool = False, **extra: str
    ) -> ServiceProcess:
        """Kill (SIGKILL) or stop (SIGTERM) a process, then start it again and wait until ready."""
        old = self.stack.procs[f"{name}-{command}"]
        old.popen.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        old.popen.wait(timeout=30)
        new = self.stack.start(name, command, grpc=grpc, **extra)
        self.stack.wait_ready(new, READY_S)
        return new

    def dispatcher_api(self) -> ServiceProcess:
        """The dispatcher's gRPC API (DLQ listing and replay), started on first use."""
        proc = self.stack.procs.get("dispatcher-serve")
        if proc is None:
            proc = self.stack.start("dispatcher")
            self.stack.wait_ready(proc, READY_S)
            self.stack.env["DISPATCHER_GRPC_TARGET"] = f"127.0.0.1:{proc.grpc_port}"
        return proc


@pytest.fixture
def pipeline(
    stack: Stack,  # noqa: F811 - the e2e fixture
    meta: tuple[str, MetaSandboxClient],  # noqa: F811
    database_url: str,
) -> Iterator[Pipeline]:
    meta_url, meta_client = meta
    stack.env["META_GRAPH_URL"] = meta_url
    provisioner = stack.start("provisioner")
    stack.wait_ready(provisioner, READY_S)
    stack.env["PROVISIONER_GRPC_TARGET"] = f"127.0.0.1:{provisioner.grpc_port}"
    # Retry storms of 50 copies in a second: the per-tenant limit is tested on its own elsewhere.
    tenant = json.loads(_trackai(stack, "tenant", "create", "--name", "Loja Confiável",
                                 "--slug", "loja-confiavel", "--domain", "loja.example.com",
                                 "--rate-limit", "100000"))  # fmt: skip
    tenant_id = str(tenant["id"])
    _trackai(stack, "tenant", "set-gateway", tenant_id, "--gateway", "kiwify",
             "--secret-file", "-", stdin=KIWIFY_TOKEN)  # fmt: skip
    _trackai(stack, "tenant", "set-meta", tenant_id, "--pixel-id", PIXEL_ID,
             "--access-token-file", "-", stdin=META_TOKEN)  # fmt: skip
    ingestion = stack.start("ingestion")
    workers = [
        stack.start("matcher", "consume", grpc=False),
        stack.start("dispatcher", "consume", grpc=False, **DISPATCH_SETTINGS),
    ]
    for proc in [ingestion, *workers]:
        stack.wait_ready(proc, READY_S)
    yield Pipeline(
        stack, meta_client, tenant_id, ingestion, Ledger(tenant_id, PIXEL_ID, database_url)
    )
