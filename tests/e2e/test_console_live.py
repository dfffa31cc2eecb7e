"""Live updates across the pipeline and across console replicas, as real processes.

1. A signed webhook's row appears on an open events page as "Recebido" (ingestion's status),
   moves to "Atribuído" when the matcher registers it and to "Enviado à Meta" when the
   dispatcher sends it, without a reload: the matcher's and the dispatcher's consumers are
   started one after the other, so each step is seen on its own.
2. Two console replicas: a browser-like SSE client cut from replica A reconnects to replica B
   with ``Last-Event-ID`` and receives exactly the updates it missed, never another tenant's.
Screenshots go to tests/artifacts/console/."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from playwright.async_api import Browser

from tests.e2e.conftest import ServiceProcess, Stack
from tests.e2e.test_console import (
    PASSWORD,
    SELLER,
    SELLER_B,
    VENDOR,
    Pipeline,
    _post_sale,
    _publish_status,
    _sign_in,
    _signed_in_client,
    _tenant,
    browser,
    shot,
    trackai,
)
from trackai_sandbox.testing import MetaSandboxClient

# Six processes start one after the other (two of them mid-test) on a shared machine.
pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(600)]
__all__ = ["browser"]  # the fixture, imported for its tests here


def _start(
    stack: Stack, name: str, service: str, command: str = "serve", **kw: Any
) -> ServiceProcess:
    """Start a process under its own name (the Stack keys processes by service and command)."""
    proc = stack.start(service, command, **kw)
    stack.procs[name] = stack.procs.pop(proc.name)
    stack.wait_ready(proc, timeout=150)
    return proc


async def test_a_sale_appears_received_then_matched_then_sent_without_reload(
    stack: Stack,
    browser: Browser,
    meta: tuple[str, MetaSandboxClient],
    amqp_url: str,
    amqp_prefix: str,
    database_url: str,
) -> None:
    assert (VENDOR / "htmx.min.js").exists(), "run `make console-assets` first"
    meta_url, meta_client = meta
    stack.env["META_GRAPH_URL"] = meta_url
    provisioner = _start(stack, "provisioner", "provisioner")
    stack.env["PROVISIONER_GRPC_TARGET"] = f"127.0.0.1:{provisioner.grpc_port}"
    tenant = _tenant(stack, "loja-da-ana")
    for name in ("ingestion", "matcher", "dispatcher"):
        proc = _start(stack, name, name)
        stack.env[f"{name.upper()}_GRPC_TARGET"] = f"127.0.0.1:{proc.grpc_port}"
    console = _start(stack, "console", "console")
    trackai(console, stack, "user", "create", "--email", SELLER, "--role", "seller",
            "--tenant", tenant, "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    pipeline = Pipeline(
        stack, console, stack.procs["ingestion"], tenant, tenant, amqp_url, amqp_prefix, meta_client,
        database_url,
    )  # fmt: skip

    page = await _sign_in(browser, pipeline, "desktop")
    await page.get_by_role("link", name="Eventos").click()
    await page.get_by_text("Nenhum evento neste filtro ainda.").wait_for()
    await page.wait_for_function("document.querySelector('[sse-connect]') !== null")
    await page.wait_for_timeout(500)  # the live stream is open
    assert await page.evaluate("window.__notReloaded = true") is True

    order_id = f"ana-{uuid.uuid4().hex[:8]}"
    _post_sale(pipeline, tenant, order_id, "taConsoleLiveSession01")
    row = page.locator("tr", has_text=order_id)
    # Only ingestion has it: its "received" status brings the row in.
    await row.get_by_text("Recebido").wait_for(timeout=30_000)
    await shot(page, "eventos-recebido-desktop")

    _start(stack, "matcher-consume", "matcher", "consume", grpc=False)
    await row.get_by_text("Atribuído").wait_for(timeout=60_000)
    assert "Determinístico" in await row.inner_text()
    await shot(page, "eventos-atribuido-desktop")

    _start(
        stack, "dispatcher-consume", "dispatcher", "consume", grpc=False,
        DISPATCHER_BATCH_DEADLINE_MS="50",
    )  # fmt: skip
    await row.get_by_text("Enviado à Meta").wait_for(timeout=60_000)
    assert await page.evaluate("window.__notReloaded === true")
    await shot(page, "eventos-enviado-desktop")


class SseReader(threading.Thread):
    """A browser's EventSource, reduced: reads ``id``/``event``/``data`` until it has seen the
    status of ``stop_at``, sending ``Last-Event-ID`` when it has one."""

    def __init__(self, client: httpx.Client, last_id: str, stop_at: str) -> None:
        super().__init__(daemon=True)
        self.client, self.last_id, self.stop_at = client, last_id, stop_at
        self.ready = threading.Event()
        self.received: list[tuple[str, str]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
        try:
            with self.client.stream(
                "GET", "/eventos/ao-vivo", headers=headers, timeout=httpx.Timeout(20, read=20)
            ) as stream:
                event_id, kind = "", ""
                for line in stream.iter_lines():
                    if line.startswith("id: "):
                        event_id = line[4:]
                    elif line.startswith("event: "):
                        kind = line[7:]
                        if kind == "ready":
                            self.ready.set()
                    elif line.startswith("data: ") and kind == "status":
                        entity_id = json.loads(line[6:])["entity_id"]
                        self.received.append((event_id, entity_id))
                        if entity_id == self.stop_at:
                            return
        except BaseException as exc:  # reported by the test
            self.error = exc
            self.ready.set()


async def _read(reader: SseReader) -> list[tuple[str, str]]:
    reader.join(20)
    assert reader.error is None, reader.error
    assert not reader.is_alive(), f"stopped waiting; got {reader.received}"
    return reader.received


async def test_a_browser_resumes_on_another_replica_with_exactly_what_it_missed(
    stack: Stack, amqp_url: str, amqp_prefix: str, redis_url: str, database_url: str
) -> None:
    replica_a = _start(stack, "console-a", "console")
    replica_b = _start(stack, "console-b", "console")
    ana, bruno = str(uuid.uuid4()), str(uuid.uuid4())
    for email, tenant in ((SELLER, ana), (SELLER_B, bruno)):
        trackai(replica_a, stack, "user", "create", "--email", email, "--role", "seller",
                "--tenant", tenant, "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    pipeline = Pipeline(stack, replica_a, replica_a, ana, bruno, amqp_url, amqp_prefix,
                        None, database_url)  # type: ignore[arg-type]  # fmt: skip

    async def publish(tenant: str, name: str) -> None:
        await _publish_status(pipeline, tenant, name)

    with _signed_in_client(pipeline, SELLER) as on_a:
        first = SseReader(on_a, "", stop_at="ana-2")
        first.start()
        assert first.ready.wait(20)
        await publish(ana, "ana-1")
        await publish(bruno, "bruno-1")
        await publish(ana, "ana-2")
        seen = await _read(first)
        assert [name for _, name in seen] == ["ana-1", "ana-2"]

        # The connection dropped (the reader returned); meanwhile three more updates.
        await publish(ana, "ana-3")
        await publish(bruno, "bruno-2")
        await publish(ana, "ana-4")
        # Both replicas consumed them before the browser comes back (so they come from the
        # shared history, not from B's live feed).
        redis = aioredis.Redis.from_url(redis_url)
        stream = f"{amqp_prefix}trackai:console:live:{{{ana}}}"
        try:
            for _ in range(100):
                if await redis.xlen(stream) == 4:
                    break
                await asyncio.sleep(0.1)
            assert await redis.xlen(stream) == 4
        finally:
            await redis.aclose()

        # The same session (its cookie) on replica B, with the last id A sent.
        with httpx.Client(base_url=replica_b.http, cookies=on_a.cookies, timeout=30) as on_b:
            resumed = SseReader(on_b, seen[-1][0], stop_at="ana-5")
            resumed.start()
            assert resumed.ready.wait(20)
            await publish(ana, "ana-5")
            got = await _read(resumed)
    assert [name for _, name in got] == ["ana-3", "ana-4", "ana-5"]
    ids = [i for i, _ in [*seen, *got]]
    assert len(set(ids)) == 5
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
