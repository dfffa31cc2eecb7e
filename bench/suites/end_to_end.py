"""The whole pipeline under the ingress's real load: ``pipeline.end_to_end``.

Every process as deployed, on this machine: ingestion ``serve`` and ``relay``, the matcher's and
the dispatcher's ``consume``, the Meta fake (``python -m trackai_sandbox serve --only meta``), one
database (each service's schema migrated) and a queue prefix ``bench.<random>.``; the tenant
registry (webhook credentials of all nine gateways, the tenant's view, its Meta destination)
answers from the benchmark process. The load is :mod:`bench.mix`: visitors' page views (about a
hundred per sale), leads and checkout starts, and every gateway's webhooks, signed as the gateway
signs them, with pix pending-then-paid, refunds and repeated postbacks.

Each run has two phases. **Closed loop** (as fast as 32 connections go): ``sales_rate`` is the
sales that reached Meta divided by the time from the first request to the last of them at Meta
(the backlog the back end built during the load is drained inside that time, so this is the rate
the pipeline sustains, not the rate the ingress accepts: that is ``accept_rate``). **Paced** at
half that rate: webhook-to-Meta latency (the approving webhook's send to the Meta fake's receipt
of its Purchase) p50/p95/p99. After each phase, Jepsen-style accounting: every hit answered is one
message the matcher handled; every webhook accepted is one line of the matcher's conversion log;
every approved sale is at Meta exactly once under its event_id, or visibly not dispatched with
the matcher's or the dispatcher's reason; refunds, pendings and repeated postbacks add nothing at
Meta; nothing at Meta that no sale explains. A run that cannot account for everything fails.
RSS: each process's peak (``VmHWM``) so far, from ``/proc``; target <= 200 MB each.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import cast

import aio_pika
import asyncpg
import httpx

from bench.context import BenchContext
from bench.http_load import ANSWER_TIMEOUT_S, _content_length
from bench.mix import SECRETS, Mix, Step, every_gateway_once
from bench.registry import Metric, Ref, RunOnce, benchmark
from bench.servers import HOST, Server, process_server
from bench.stats import percentile
from bench.suites.baseline_http import CONNECTIONS
from bench.suites.ingestion import (
    COLLECT,
    WEBHOOK,
    _server_log,
    migrated_database,
    serve_env,
)
from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as prov_grpc
from trackai_kit import migrations
from trackai_kit.grpc import AccessPolicy, local_dev_callers, rpc, start_grpc_server
from trackai_kit.identity import event_id
from trackai_kit.settings import GrpcSettings
from trackai_kit.topology import ingestion_topology, matcher_topology
from trackai_testing.ports import free_port
from trackai_testing.registry import Destination, FakeTenantRegistry

END_TO_END = "pipeline.end_to_end"
PIXEL = "1234567890"
#: The Meta fake's built-in token for its built-in pixel.
META_TOKEN = "sandbox-token"
#: How long a phase's sales may take to be accounted for once the load stops.
SETTLE_LIMIT_S = 180.0
PROCESSES = ("serve", "relay", "matcher", "dispatcher")
_REGISTRY = prov.DESCRIPTOR.services_by_name["TenantRegistryService"]


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time: ``await send(raw)`` answers
    (status, body)."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._answer: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        assert self._transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self._transport.write(raw)
        return await self._answer

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        start = end + 4
        length = _content_length(bytes(self._buffer[:end]))
        if len(self._buffer) < start + length:
            return
        status = int(self._buffer[9:12])
        body = bytes(self._buffer[start : start + length])
        del self._buffer[:]
        if self._answer is not None and not self._answer.done():
            self._answer.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc or ConnectionError("server closed the connection"))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


@dataclass
class Ledger:
    """What the ingress acknowledged, cumulative over the benchmark's runs."""

    tenant_id: str
    hits: int = 0
    #: Accepted webhooks that were not repeats: each is one conversion message.
    accepted: int = 0
    repeats: int = 0
    #: (gateway, order) -> wall-clock time its approving webhook was sent.
    sales: dict[tuple[str, str], float] = field(default_factory=dict)
    #: (gateway, order, status) of every accepted refund and pending webhook.
    others: set[tuple[str, str, str]] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)

    def event_id(self, gateway: str, order: str) -> str:
        return event_id(self.tenant_id, gateway, order, "Purchase")

    def record(self, step: Step, status: int, body: bytes, sent_at: float) -> None:
        if step.kind == "hit":
            if status == 204:
                self.hits += 1
            else:
                self.failures.append(f"hit answered {status}: {body[:200]!r}")
            return
        answer = json.loads(body) if status == 200 else {}
        duplicate = answer.get("duplicate") is True
        if answer.get("status") != "accepted" or duplicate != (step.kind == "duplicate"):
            self.failures.append(f"{step.gateway} {step.kind} answered {status}: {body[:200]!r}")
            return
        if duplicate:
            self.repeats += 1
            return
        self.accepted += 1
        if step.kind == "approved":
            self.sales[(step.gateway, step.order)] = sent_at
        else:
            status_name = "pending_payment" if step.kind == "pending" else step.kind
            self.others.add((step.gateway, step.order, status_name))


@dataclass
class Phase:
    """What one phase of load sent: its sales, journeys and requests, and its clock."""

    started: float
    seconds: float = 0.0
    journeys: int = 0
    requests: int = 0
    sales: list[tuple[str, str]] = field(default_factory=list)


async def _journey(
    connection: _Connection, steps: Sequence[Step], ledger: Ledger, phase: Phase
) -> None:
    for step in steps:
        sent_at = time.time()
        try:
            status, body = await asyncio.wait_for(connection.send(step.request()), ANSWER_TIMEOUT_S)
        except TimeoutError:
            raise RuntimeError(
                f"{step.kind} {step.gateway} {step.order}: no answer in {ANSWER_TIMEOUT_S:.0f} s"
            ) from None
        phase.requests += 1
        ledger.record(step, status, body, sent_at)
        if step.kind == "approved" and (step.gateway, step.order) in ledger.sales:
            phase.sales.append((step.gateway, step.order))
    phase.journeys += 1


async def _connect(port: int, count: int) -> list[_Connection]:
    loop = asyncio.get_running_loop()
    connections = []
    for _ in range(count):
        _, connection = await loop.create_connection(_Connection, HOST, port)
        connections.append(connection)
    return connections


async def closed_loop(
    port: int, journeys: Iterator[list[Step]], ledger: Ledger, seconds: float
) -> Phase:
    """Each connection runs journeys back to back until ``seconds`` have passed (a journey in
    progress is finished: no sale is left half-sent)."""
    connections = await _connect(port, CONNECTIONS)
    phase = Phase(started=time.time())
    deadline = time.monotonic() + seconds

    async def worker(connection: _Connection) -> None:
        while time.monotonic() < deadline:
            await _journey(connection, next(journeys), ledger, phase)

    try:
        await asyncio.gather(*(worker(c) for c in connections))
    finally:
        for connection in connections:
            connection.close()
    phase.seconds = time.time() - phase.started
    return phase


async def paced(
    port: int, journeys: Iterator[list[Step]], ledger: Ledger, seconds: float, rate: float
) -> Phase:
    """Journeys started at ``rate`` a second, each on a free connection (waiting for one when
    all are busy: the wait counts in the sale's latency, as a gateway's would)."""
    free: asyncio.Queue[_Connection] = asyncio.Queue()
    connections = await _connect(port, CONNECTIONS)
    for connection in connections:
        free.put_nowait(connection)
    phase = Phase(started=time.time())
    tasks: list[asyncio.Task[None]] = []

    async def run(connection: _Connection, steps: list[Step]) -> None:
        try:
            await _journey(connection, steps, ledger, phase)
        finally:
            free.put_nowait(connection)

    start = time.monotonic()
    try:
        for index in itertools.count():
            due = start + index / rate
            if due >= start + seconds:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            connection = await free.get()
            tasks.append(asyncio.create_task(run(connection, next(journeys))))
        await asyncio.gather(*tasks)
    finally:
        for connection in connections:
            connection.close()
    phase.seconds = time.time() - phase.started
    return phase


@dataclass(frozen=True)
class Account:
    delivered: dict[str, float]
    not_dispatched: dict[str, str]
    missing: list[str]
    problems: list[str]


class Auditor:
    """Reads where every acknowledged message ended: the matcher's inbox and conversion log, the
    dispatcher's dead events, the Meta fake's counts."""

    def __init__(self, conn: asyncpg.Connection, meta: httpx.AsyncClient, ledger: Ledger) -> None:
        self._conn = conn
        self._meta = meta
        self._ledger = ledger

    async def _meta_events(self) -> tuple[dict[str, int], dict[str, float]]:
        counts = (await self._meta.get("/_sandbox/event-counts", params={"pixel_id": PIXEL})).json()
        events = (
            await self._meta.get("/_sandbox/events", params={"pixel_id": PIXEL, "limit": 1_000_000})
        ).json()
        seen = {row["event_id"]: row["count"] for row in counts["data"]}
        first: dict[str, float] = {}
        for row in events["data"]:
            eid = str(row["event"].get("event_id"))
            first[eid] = min(first.get(eid, row["received_at"]), row["received_at"])
        return seen, first

    async def account(self, sales: Sequence[tuple[str, str]]) -> Account:
        ledger = self._ledger
        problems = list(ledger.failures)
        handled = await self._conn.fetchval("SELECT count(*) FROM matcher.inbox")
        expected = ledger.hits + ledger.accepted
        if handled != expected:
            problems.append(f"matcher handled {handled} messages, ingress acknowledged {expected}")
        logged = await self._conn.fetch(
            "SELECT gateway, order_id, status, disposition, coalesce(reason, '') AS reason,"
            " event_id FROM matcher.conversion_log WHERE tenant_id = $1",
            uuid.UUID(ledger.tenant_id),
        )
        log = {(r["gateway"], r["order_id"], r["status"]): r for r in logged}
        if len(logged) != ledger.accepted:
            problems.append(f"{len(logged)} conversions logged, {ledger.accepted} accepted")
        dead = {
            r["event_id"]: r["reason"]
            for r in await self._conn.fetch(
                "SELECT event_id, coalesce(reason, state) AS reason FROM dispatcher.dispatches"
                " WHERE tenant_id = $1 AND state IN ('dead', 'expired')",
                uuid.UUID(ledger.tenant_id),
            )
        }
        counts, received = await self._meta_events()
        issued = {ledger.event_id(g, o) for g, o in ledger.sales}
        strangers = set(counts) - issued
        if strangers:
            problems.append(f"{len(strangers)} events at Meta no sale explains")
        for gateway, order, status in ledger.others:
            row = log.get((gateway, order, status))
            if row is None:
                problems.append(f"{status} of {gateway} {order} not in the conversion log")
            elif row["disposition"] == "queued":
                problems.append(f"{status} of {gateway} {order} was queued for Meta")
        delivered: dict[str, float] = {}
        not_dispatched: dict[str, str] = {}
        missing: list[str] = []
        for gateway, order in sales:
            eid = ledger.event_id(gateway, order)
            seen = counts.get(eid, 0)
            row = log.get((gateway, order, "approved"))
            if seen == 1:
                delivered[eid] = received[eid]
            elif seen > 1:
                problems.append(f"{gateway} {order} at Meta {seen} times")
            elif eid in dead:
                not_dispatched[eid] = f"dispatcher: {dead[eid]}"
            elif row is not None and row["disposition"] != "queued":
                not_dispatched[eid] = f"matcher: {row['disposition']} {row['reason']}"
            else:
                missing.append(f"{gateway} {order}")
        return Account(delivered, not_dispatched, missing, problems)

    async def settle(self, sales: Sequence[tuple[str, str]], limit_s: float) -> Account:
        """Wait until every sale of the phase is at Meta or visibly not dispatched, and every
        message is handled; raise if anything is still unaccounted for at the limit."""
        deadline = time.monotonic() + limit_s
        while True:
            account = await self.account(sales)
            if not account.missing and not account.problems:
                return account
            if time.monotonic() > deadline:
                shown = (account.problems + account.missing)[:5]
                raise RuntimeError(
                    f"not accounted for after {limit_s:.0f} s: {len(account.missing)} sales "
                    f"missing, problems: {shown}"
                )
            await asyncio.sleep(0.1)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set so far (``VmHWM``), in MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def _registry_contents(tenant_id: str) -> FakeTenantRegistry:
    registry = FakeTenantRegistry()  # type: ignore[abstract]  # the stubs mark every RPC abstract
    tenant = prov.Tenant(
        id=tenant_id,
        slug="bench-e2e",
        rate_limit_per_minute=100_000_000,
        allowed_domains=["bench.example"],
    )
    view = prov.TenantView(tenant=tenant, meta=prov.MetaPixel(pixel_id=PIXEL))
    registry.webhook_configs[tenant_id] = prov.WebhookConfig(
        view=view,
        gateways=[prov.GatewayCredential(gateway=g, secret=s) for g, s in SECRETS.items()],
    )
    registry.views[tenant_id] = view
    registry.destinations[tenant_id] = Destination(
        prov.MetaDestination(pixel_id=PIXEL, access_token=META_TOKEN)
    )
    return registry


@contextlib.asynccontextmanager
async def tenant_registry(tenant_id: str) -> AsyncIterator[str]:
    """The registry as each service calls it: ingestion its webhook config, the matcher the
    tenant's view, the dispatcher the Meta destination."""
    server = await start_grpc_server(
        GrpcSettings(port=0, callers=local_dev_callers()),
        partial(
            prov_grpc.add_TenantRegistryServiceServicer_to_server, _registry_contents(tenant_id)
        ),
        [_REGISTRY.full_name],
        AccessPolicy.of(
            {
                "ingestion": [
                    rpc(_REGISTRY, "GetWebhookConfig"),
                    rpc(_REGISTRY, "GetTenantView"),
                ],
                "matcher": [rpc(_REGISTRY, "GetTenantView")],
                "dispatcher": [rpc(_REGISTRY, "GetMetaDestination")],
            }
        ),
    )
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        await server.stop(0)


@contextlib.asynccontextmanager
async def _own_queues(amqp_url: str, prefix: str) -> AsyncIterator[None]:
    """Removes every queue of the pipeline under ``prefix`` when the benchmark ends."""
    from trackai_dispatcher.bootstrap import dispatch_topology
    from trackai_dispatcher.settings import Settings as DispatcherSettings

    try:
        yield
    finally:
        topology = (
            ingestion_topology()
            .merge(matcher_topology())
            .merge(dispatch_topology(DispatcherSettings()))
            .prefixed(prefix)
        )
        connection = await aio_pika.connect(amqp_url)
        try:
            channel = await connection.channel()
            for queue in topology.all_queues():
                await channel.queue_delete(queue.name)
        finally:
            await connection.close()


@contextlib.asynccontextmanager
async def _meta_fake() -> AsyncIterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "trackai_sandbox", "serve", "--only", "meta"]
    env = {"SANDBOX_META_PORT": str(port), "LOG_LEVEL": "WARNING"}
    async with process_server(argv, port, extra_env=env):
        yield f"http://127.0.0.1:{port}"


@benchmark(
    END_TO_END,
    metrics=[
        Metric("sales_rate", "sales/s", ratio_to=Ref(WEBHOOK, "throughput")),
        Metric("accept_rate", "sales/s"),
        Metric("ingress_rate", "req/s", ratio_to=Ref(COLLECT, "throughput")),
        Metric("paced_rate", "sales/s"),
        Metric("p50", "ms", higher_is_better=False),
        Metric("p95", "ms", higher_is_better=False),
        Metric("p99", "ms", higher_is_better=False),
        Metric("not_dispatched", "sales", higher_is_better=False),
        *(Metric(f"rss_{name}", "MB", higher_is_better=False) for name in PROCESSES),
    ],
    # Set-up primes every process with one sale per gateway instead (a whole warm-up run would
    # double the line's time).
    warmup=False,
)
async def end_to_end(ctx: BenchContext) -> AsyncIterator[RunOnce]:
    """Page views (~100 per sale), leads, checkout starts and every gateway's webhooks (pix,
    refunds, repeats) through serve, relay, matcher and dispatcher to the Meta fake: sales/s
    sustained with every sale accounted for, webhook-to-Meta latency at half that rate, peak
    RSS per process."""
    settings = ctx.settings
    db_url = await migrated_database(ctx, "pipeline.end_to_end.database")
    for service in ("matcher", "dispatcher"):
        await asyncio.to_thread(migrations.upgrade, service, db_url)
    tenant_id = str(uuid.uuid4())
    prefix = f"bench.{secrets.token_hex(6)}."
    port = free_port()
    env = serve_env(db_url, settings.amqp_url, prefix, port)
    servers: dict[str, Server] = {}
    async with contextlib.AsyncExitStack() as stack:
        meta_url = await stack.enter_async_context(_meta_fake())
        await stack.enter_async_context(_own_queues(settings.amqp_url, prefix))
        env["PROVISIONER_GRPC_TARGET"] = await stack.enter_async_context(tenant_registry(tenant_id))
        env["META_GRAPH_URL"] = meta_url
        relay_port, matcher_port, dispatcher_port = free_port(), free_port(), free_port()
        processes: list[tuple[str, list[str], int, dict[str, str]]] = [
            ("serve", ["trackai_ingestion", "serve"], port, {}),
            ("relay", ["trackai_ingestion", "relay"], relay_port,
             {"INGESTION_HTTP_PORT": str(relay_port)}),
            ("matcher", ["trackai_matcher", "consume"], matcher_port,
             {"MATCHER_HTTP_PORT": str(matcher_port), "MATCHER_GRPC_PORT": str(free_port())}),
            ("dispatcher", ["trackai_dispatcher", "consume"], dispatcher_port,
             {"DISPATCHER_HTTP_PORT": str(dispatcher_port)}),
        ]  # fmt: skip

        async def start(name: str, argv: list[str], listen: int, extra: dict[str, str]) -> None:
            log = await stack.enter_async_context(_server_log())
            servers[name] = await stack.enter_async_context(
                process_server(
                    [sys.executable, "-m", *argv], listen, extra_env={**env, **extra}, stdout=log
                )
            )

        # Started together: each spends seconds importing, and the cores are shared anyway.
        await asyncio.gather(*(start(*process) for process in processes))
        conn = await asyncpg.connect(db_url)
        stack.push_async_callback(conn.close)
        meta = await stack.enter_async_context(httpx.AsyncClient(base_url=meta_url, timeout=30))
        ledger = Ledger(tenant_id)
        auditor = Auditor(conn, meta, ledger)
        mix = Mix(port, tenant_id, secrets.token_hex(3))
        journeys = mix.journeys()

        # Priming: one sale per gateway through every process, accounted for like the runs.
        priming = Phase(started=time.time())
        connection = (await _connect(port, 1))[0]
        for steps in every_gateway_once(mix):
            await _journey(connection, steps, ledger, priming)
        connection.close()
        await auditor.settle(priming.sales, SETTLE_LIMIT_S)
        seconds = ctx.seconds(10.0, 3.0)
        # Paced longer: it is where the latency percentiles come from, at a few sales a second.
        paced_seconds = ctx.seconds(20.0, 6.0)

        async def once() -> dict[str, float]:
            closed = await closed_loop(port, journeys, ledger, seconds)
            account = await auditor.settle(closed.sales, SETTLE_LIMIT_S)
            if not account.delivered:
                raise RuntimeError("no sale reached Meta during the closed-loop phase")
            delivered = len(account.delivered)
            sales_rate = delivered / (max(account.delivered.values()) - closed.started)
            # Half the sustained rate, in journeys a second (the mix's journeys per sale).
            rate = sales_rate / 2 * closed.journeys / max(1, len(closed.sales))
            steady = await paced(port, journeys, ledger, paced_seconds, rate)
            paced_account = await auditor.settle(steady.sales, SETTLE_LIMIT_S)
            latencies = [
                (paced_account.delivered[eid] - ledger.sales[(g, o)]) * 1000
                for g, o in steady.sales
                if (eid := ledger.event_id(g, o)) in paced_account.delivered
            ]
            if not latencies:
                raise RuntimeError("no sale reached Meta during the paced phase")
            return {
                "sales_rate": sales_rate,
                "accept_rate": len(closed.sales) / closed.seconds,
                "ingress_rate": closed.requests / closed.seconds,
                "paced_rate": len(steady.sales) / steady.seconds,
                "p50": percentile(latencies, 50),
                "p95": percentile(latencies, 95),
                "p99": percentile(latencies, 99),
                "not_dispatched": len(account.not_dispatched) + len(paced_account.not_dispatched),
                **{f"rss_{name}": peak_rss_mb(servers[name].pid) for name in PROCESSES},
            }

        yield once
