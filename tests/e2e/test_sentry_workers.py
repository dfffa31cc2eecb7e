"""Every worker reports its real failures to Sentry, tagged and clean: the processes run as
deployed (``python -m trackai_<service> <command>``) with ``SENTRY_DSN`` pointing at the
sandbox's Sentry envelope sink, and each is made to fail through a path that exists in
production:

- ingestion ``serve``: the database refuses the accept statement (a table is missing) while a
  signed sale carrying the buyer's personal data is being stored: 500, unhandled error;
- ingestion ``relay`` (its own process, as the chart runs it): the broker lost the
  ``ingest-events`` queue, every publish of an accepted sale is returned as unroutable;
- the matcher's ``consume``: a poison ``IngestEvent`` (a sale without an order id) is
  dead-lettered;
- the dispatcher's ``consume``: Meta answers 500 past the retry ladder, the conversion is dead;
- the provisioner (gRPC tenant registry): its database fails while a gateway secret is stored;
- the agent (gRPC): its database fails under the console's call for a seller's conversation;
- the console: a signed-in seller's page fails on the console's database (500).

Each event must carry the ``service`` tag, the release and environment the process was given,
the ``tenant_id`` tag (and ``event_id`` where the process knows the event: the dispatcher), and
nothing the sink received may hold a tenant secret or any of the buyer's personal values (derived
from the webhook fixture's personal fields, searched raw, lower-cased, JSON-escaped and
URL-encoded).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import grpc
import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_purchase_flow import META_TOKEN, PIXEL_ID, _kiwify_webhook, _trackai, _wait_for
from trackai.agent.v1 import agent_service_pb2 as agent_pb
from trackai.agent.v1 import agent_service_pb2_grpc as agent_grpc
from trackai.ingestion.v1 import events_pb2 as ingest
from trackai_kit.grpc import client_channel, local_dev_token
from trackai_kit.identity import event_id
from trackai_kit.topology import INGEST_EVENTS
from trackai_sandbox.sentry import SentrySink
from trackai_testing.personal_data import find_leaks, personal_values

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

_RUN = uuid.uuid4().hex[:12]
#: The tenant's secrets, unique to this run so that finding one can only mean a leak.
KIWIFY_SECRET = "kiwi" + _RUN + "secret"
RELEASE = f"trackai@sentry-{_RUN}"
SELLER = f"dona.{_RUN}@lojasentry.com.br"
PASSWORD = "senha-da-loja-sentry-" + _RUN
READY_S = 150.0
#: A failure reaches the sink within this (processes on a loaded two-core machine; the relay's
#: report needs five failed publishes, about 8 s of its back-off).
EVENT_S = 90.0


def _sign(body: bytes) -> str:
    return hmac.new(KIWIFY_SECRET.encode(), body, hashlib.sha1).hexdigest()


#: A buyer whose every personal value is unique to this run (and partly non-ASCII, which JSON
#: escapes): the fixture's own buyer is placeholders.
BUYER = {
    "full_name": f"João Ávila Nogueira{_RUN[:4]}",
    "first_name": "João",
    "email": f"joao.avila.{_RUN}@exemplo.com.br",
    "mobile": "+55 11 98765-4321",
    "CPF": "390.533.447-05",
    "ip": "203.0.113.10",
    "country": "br",
}


def _sale(order_id: str) -> bytes:
    payload = json.loads(_kiwify_webhook(order_id))
    payload["Customer"] = BUYER
    return json.dumps(payload).encode()


def _post_sale(ingestion: str, tenant_id: str, order_id: str) -> httpx.Response:
    body = _sale(order_id)
    return httpx.post(
        f"{ingestion}/api/v1/webhooks/kiwify/{tenant_id}?signature={_sign(body)}",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )


def _events_of(sink: SentrySink, service: str) -> list[dict[str, Any]]:
    return [e for e in sink.events() if (e.get("tags") or {}).get("service") == service]


def _wait_event(sink: SentrySink, service: str, message: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        for event in _events_of(sink, service):
            if (event.get("logentry") or {}).get("message") == message:
                return event
        return None

    event: dict[str, Any] = _wait_for(found, EVENT_S, f"{service}: Sentry event {message!r}")
    return event


def _assert_tagged(event: dict[str, Any], service: str, tenant_id: str) -> None:
    tags = event.get("tags") or {}
    assert tags.get("service") == service, tags
    assert tags.get("tenant_id") == tenant_id, (service, tags)
    assert event.get("release") == RELEASE, (service, event.get("release"))
    assert event.get("environment") == "test", (service, event.get("environment"))


async def _amqp(amqp_url: str, action: Any) -> None:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        await action(channel)
    finally:
        await connection.close()


def _publish_poison(amqp_url: str, queue: str, tenant_id: str) -> None:
    """An IngestEvent that decodes but can never be processed: a sale without an order id."""
    event = ingest.IngestEvent(message_id=str(uuid.uuid4()), tenant_id=tenant_id)
    event.conversion.gateway = "kiwify"
    event.conversion.currency = "BRL"

    async def publish(channel: aio_pika.abc.AbstractChannel) -> None:
        message = aio_pika.Message(
            event.SerializeToString(),
            message_id=event.message_id,
            type=ingest.IngestEvent.DESCRIPTOR.full_name,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await channel.default_exchange.publish(message, routing_key=queue)

    asyncio.run(_amqp(amqp_url, publish))


def _delete_queue(amqp_url: str, queue: str) -> None:
    async def delete(channel: aio_pika.abc.AbstractChannel) -> None:
        await channel.queue_delete(queue)

    asyncio.run(_amqp(amqp_url, delete))


def _sql(database_url: str, statement: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


async def _current_session(port: int, tenant_id: str) -> grpc.StatusCode:
    """The console's call for a seller's open conversation; the status it ends with."""
    async with client_channel(f"127.0.0.1:{port}", local_dev_token("console")) as channel:
        stub = agent_grpc.AgentServiceStub(channel)
        try:
            await stub.GetCurrentSession(agent_pb.GetCurrentSessionRequest(tenant_id=tenant_id))
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


@pytest.fixture
def sink() -> Iterator[SentrySink]:
    with SentrySink() as running:
        yield running


def test_every_worker_reports_its_failures_tagged_and_without_secrets_or_personal_data(
    stack: Stack, meta: Any, sink: SentrySink, database_url: str, amqp_url: str, amqp_prefix: str
) -> None:
    meta_url, meta_client = meta
    stack.env.update(META_GRAPH_URL=meta_url, SENTRY_DSN=sink.dsn, SENTRY_RELEASE=RELEASE)
    provisioner = stack.start("provisioner")
    stack.wait_ready(provisioner, READY_S)
    stack.env["PROVISIONER_GRPC_TARGET"] = f"127.0.0.1:{provisioner.grpc_port}"
    tenant_id = str(json.loads(_trackai(stack, "tenant", "create", "--name", "Loja Sentry",
                                        "--slug", f"loja-sentry-{_RUN}"))["id"])  # fmt: skip
    _trackai(stack, "tenant", "set-gateway", tenant_id, "--gateway", "kiwify",
             "--secret-file", "-", stdin=KIWIFY_SECRET)  # fmt: skip
    _trackai(stack, "tenant", "set-meta", tenant_id, "--pixel-id", PIXEL_ID,
             "--access-token-file", "-", stdin=META_TOKEN)  # fmt: skip
    ingestion = stack.start("ingestion", INGESTION_RELAY_IN_SERVE="false")
    workers = [
        stack.start("ingestion", "relay", grpc=False),
        stack.start("matcher", "consume", grpc=False),
        stack.start("dispatcher", "consume", grpc=False,
                    DISPATCHER_BATCH_DEADLINE_MS="50", DISPATCHER_RETRY_DELAYS_MS="200,200"),
    ]  # fmt: skip
    for proc in [ingestion, *workers]:
        stack.wait_ready(proc, READY_S)
    personal = personal_values(json.loads(_sale("sentry-order")))
    assert len(personal) >= 6, personal  # e-mail, phone, names, document

    # The dispatcher: Meta keeps answering 500; past the ladder the event is dead-lettered.
    meta_client.add_fault("http_500", count=None)
    order = f"sentry-dispatch-{_RUN}"
    assert _post_sale(ingestion.http, tenant_id, order).json()["status"] == "accepted"
    dead = _wait_event(sink, "dispatcher", "conversion dead; it will not reach Meta")
    _assert_tagged(dead, "dispatcher", tenant_id)
    assert dead["tags"].get("event_id") == event_id(tenant_id, "kiwify", order, "Purchase")

    # The matcher: a poison message is dead-lettered.
    _publish_poison(amqp_url, f"{amqp_prefix}{INGEST_EVENTS}", tenant_id)
    poison = _wait_event(sink, "matcher", "message cannot be processed; dead-lettering")
    _assert_tagged(poison, "matcher", tenant_id)

    # Ingestion serve: the accept statement fails on the database, the request answers 500.
    _sql(database_url, "ALTER TABLE ingestion.webhook_receipts RENAME TO receipts_gone")
    try:
        assert _post_sale(ingestion.http, tenant_id, f"sentry-serve-{_RUN}").status_code == 500
        failed = _wait_event(sink, "ingestion", "webhook failed unexpectedly")
    finally:
        _sql(database_url, "ALTER TABLE ingestion.receipts_gone RENAME TO webhook_receipts")
    _assert_tagged(failed, "ingestion", tenant_id)
    assert "UndefinedTable" in json.dumps(failed)

    # The relay: the broker lost the queue; an accepted sale's message is returned unroutable.
    _delete_queue(amqp_url, f"{amqp_prefix}{INGEST_EVENTS}")
    assert _post_sale(ingestion.http, tenant_id, f"sentry-relay-{_RUN}").status_code == 200
    stuck = _wait_event(sink, "ingestion", "outbox message keeps failing to publish")
    _assert_tagged(stuck, "ingestion", tenant_id)

    # The provisioner: its database fails under a registry call.
    _sql(database_url, "ALTER TABLE provisioner.tenants RENAME TO tenants_gone")
    try:
        answer = subprocess.run(
            [str(_trackai_bin()), "tenant", "set-gateway", tenant_id, "--gateway", "kiwify",
             "--secret-file", "-", "--json"],
            env=stack.env, capture_output=True, text=True, timeout=60, input=KIWIFY_SECRET,
        )  # fmt: skip
        assert answer.returncode != 0, answer.stdout
        registry = _wait_event(sink, "provisioner", "unhandled error in gRPC call")
    finally:
        _sql(database_url, "ALTER TABLE provisioner.tenants_gone RENAME TO tenants")
    _assert_tagged(registry, "provisioner", tenant_id)

    # The agent: its database fails under the console's call for the seller's conversation.
    agent = stack.start("agent")
    stack.wait_ready(agent, READY_S)
    stack.env["AGENT_GRPC_TARGET"] = f"127.0.0.1:{agent.grpc_port}"
    _sql(database_url, "ALTER TABLE agent.sessions RENAME TO sessions_gone")
    try:
        code = asyncio.run(_current_session(agent.grpc_port or 0, tenant_id))
        assert code == grpc.StatusCode.INTERNAL, code
        chat = _wait_event(sink, "agent", "unhandled error in gRPC call")
    finally:
        _sql(database_url, "ALTER TABLE agent.sessions_gone RENAME TO sessions")
    _assert_tagged(chat, "agent", tenant_id)

    # The console: a signed-in seller opens the setup wizard while its table is gone.
    console = stack.start("console")
    stack.wait_ready(console, READY_S)
    stack.env["CONSOLE_GRPC_TARGET"] = f"127.0.0.1:{console.grpc_port}"
    _trackai(stack, "user", "create", "--email", SELLER, "--role", "seller", "--tenant",
             tenant_id, "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    with httpx.Client(base_url=console.http, timeout=30) as client:
        form = client.get("/entrar")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token, form.text
        signed = client.post(
            "/entrar", data={"email": SELLER, "senha": PASSWORD, "csrf_token": token.group(1)}
        )
        assert signed.status_code == 303, signed.text
        _sql(database_url, "ALTER TABLE console.setup_wizards RENAME TO setup_wizards_gone")
        try:
            assert client.get("/configuracao").status_code == 500
            page = _wait_event(sink, "console", "unhandled error in request")
        finally:
            _sql(database_url, "ALTER TABLE console.setup_wizards_gone RENAME TO setup_wizards")
    _assert_tagged(page, "console", tenant_id)

    received = sink.items()
    dumped = json.dumps(received)
    leaks = find_leaks(personal, dumped)
    assert not leaks, leaks
    for secret in (KIWIFY_SECRET, META_TOKEN):
        assert secret not in dumped


def _trackai_bin() -> Path:
    return Path(sys.executable).parent / "trackai"
