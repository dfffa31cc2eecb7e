"""The whole pipeline as deployed, for the reliability scenarios: the provisioner (tenant
registry), ingestion, the matcher's and the dispatcher's consumers as real processes on a migrated
test database and a private AMQP prefix, with the Meta fake on a free port."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field

import aio_pika
import aio_pika.exceptions
import httpx
import pytest

from tests.e2e.conftest import ServiceProcess, Stack, meta, stack  # noqa: F401 - fixtures
from tests.e2e.test_purchase_flow import META_TOKEN, PIXEL_ID, _kiwify_webhook, _trackai
from trackai_kit.topology import (
    CAPI_DISPATCH,
    Topology,
    delay_queues,
    dispatcher_topology,
    matcher_topology,
)
from trackai_sandbox.testing import MetaSandboxClient
from trackai_testing.plugin import run_sync

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
    #: The settings each process was started with beyond the stack's (kept across restarts).
    settings: dict[str, dict[str, str]] = field(default_factory=dict)

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
        """Kill (SIGKILL) or stop (SIGTERM) a process, then start it again (with the settings it
        had, updated by ``extra``) and wait until ready."""
        self.stop(name, command, kill=kill)
        return self.start(name, command, grpc=grpc, **extra)

    def stop(self, name: str, command: str, *, kill: bool = True) -> int:
        """Kill (SIGKILL) or stop (SIGTERM) a process; its exit code."""
        old = self.stack.procs[f"{name}-{command}"]
        old.popen.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        return old.popen.wait(timeout=60)

    def start(self, name: str, command: str, *, grpc: bool = False, **extra: str) -> ServiceProcess:
        """Start a process again with the settings it had, updated by ``extra``; wait until ready."""
        settings = self.settings.setdefault(f"{name}-{command}", {})
        settings.update(extra)
        new = self.stack.start(name, command, grpc=grpc, **settings)
        self.stack.wait_ready(new, READY_S)
        if name == "ingestion":
            self.ingestion = new
        return new

    def queue_depths(self) -> dict[str, int]:
        """Messages ready in every queue of the pipeline (work, delay and dead-letter queues)."""
        dispatcher = self.settings.get("dispatcher-consume", {})
        ladder = dispatcher.get("DISPATCHER_RETRY_DELAYS_MS", "")
        park = float(dispatcher.get("DISPATCHER_BREAKER_COOLDOWN_S", "30")) * 1000
        delays = {int(d) for d in ladder.split(",") if d} | {int(park)}
        topology = (
            matcher_topology()
            .merge(dispatcher_topology())
            .merge(delay_queues(CAPI_DISPATCH, tuple(sorted(delays))))
            .prefixed(self.stack.env["AMQP_PREFIX"])
        )
        return run_sync(_queue_depths(self.stack.env["AMQP_URL"], topology))

    def dispatcher_api(self) -> ServiceProcess:
        """The dispatcher's gRPC API (DLQ listing and replay), started on first use."""
        proc = self.stack.procs.get("dispatcher-serve")
        if proc is None:
            proc = self.stack.start("dispatcher")
            self.stack.wait_ready(proc, READY_S)
            self.stack.env["DISPATCHER_GRPC_TARGET"] = f"127.0.0.1:{proc.grpc_port}"
        return proc


@pytest.fixture
def dispatch_settings() -> dict[str, str]:
    """Dispatcher settings on top of :data:`DISPATCH_SETTINGS`; a test overrides them with
    ``@pytest.mark.parametrize("dispatch_settings", [{...}])``."""
    return {}


@pytest.fixture
def pipeline(
    stack: Stack,  # noqa: F811 - the e2e fixture
    meta: tuple[str, MetaSandboxClient],  # noqa: F811
    database_url: str,
    dispatch_settings: dict[str, str],
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
    dispatcher = {**DISPATCH_SETTINGS, **dispatch_settings}
    ingestion = stack.start("ingestion")
    workers = [
        stack.start("matcher", "consume", grpc=False),
        stack.start("dispatcher", "consume", grpc=False, **dispatcher),
    ]
    for proc in [ingestion, *workers]:
        stack.wait_ready(proc, READY_S)
    yield Pipeline(
        stack,
        meta_client,
        tenant_id,
        ingestion,
        Ledger(
            tenant_id,
            PIXEL_ID,
            database_url,
            amqp_url=stack.env["AMQP_URL"],
            amqp_prefix=stack.env["AMQP_PREFIX"],
        ),
        settings={"dispatcher-consume": dispatcher},
    )


async def _queue_depths(url: str, topology: Topology) -> dict[str, int]:
    connection = await aio_pika.connect(url)
    depths: dict[str, int] = {}
    try:
        for spec in topology.all_queues():
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(spec.name, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                continue  # not declared (yet): empty
            depths[spec.name] = queue.declaration_result.message_count or 0
            await channel.close()
    finally:
        await connection.close()
    return depths
