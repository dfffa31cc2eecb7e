"""The real console app (kit HTTP app + the console's pages) on a migrated database, driven over
ASGI by httpx, and its UserAdminService on a real gRPC server on an ephemeral port."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import asyncpg
import httpx
import pytest

from trackai.console.v1 import console_service_pb2_grpc as pb_grpc
from trackai_console.adapters.accounts_store import PostgresAccountStore
from trackai_console.adapters.agent_api import GrpcAssistant
from trackai_console.adapters.dlq import GrpcDeadLetterQueue
from trackai_console.adapters.emq_store import PostgresEmqHistory
from trackai_console.adapters.health_apis import GrpcDeliveryHealth, GrpcWebhookActivity
from trackai_console.adapters.passwords import Argon2Hasher
from trackai_console.adapters.read_apis import GrpcEventSource, GrpcMatchStats
from trackai_console.bootstrap import USER_ADMIN_SERVICE
from trackai_console.domain.accounts import LoginLimits
from trackai_console.entrypoints import web
from trackai_console.entrypoints.grpc_access import POLICY
from trackai_console.entrypoints.grpc_users import UserAdminServicer
from trackai_console.entrypoints.pages import WebConfig
from trackai_console.service_layer.accounts import Accounts
from trackai_console.service_layer.assistant import Assistant
from trackai_console.service_layer.dead_letters import DeadLetters
from trackai_console.service_layer.events import Events
from trackai_console.service_layer.live import StatusHub
from trackai_console.service_layer.overview import BuildOverview
from trackai_console.service_layer.quality import Quality
from trackai_console.service_layer.tenant_health import TenantHealthList
from trackai_console.service_layer.wizard import SetupWizard
from trackai_kit.grpc import client_channel, start_grpc_server
from trackai_kit.http import create_app
from trackai_kit.postgres import create_pool
from trackai_kit.settings import GrpcSettings, PostgresSettings, local_dev_callers, local_dev_token

from .wizard_fakes import FakeChecks, FakeRegistry, MemoryWizardStore

#: `trackai user` calls the console as the operator.
TOKEN = local_dev_token("operator")
PASSWORD = "uma-senha-forte-1"
PUBLIC_URL = "http://console.test"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Console:
    accounts: Accounts
    pool: asyncpg.Pool
    app: object
    grpc_port: int

    def client(self, base_url: str = "http://console.test") -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=("203.0.113.7", 5000)),  # type: ignore[arg-type]
            base_url=base_url,
        )

    async def seller(self, email: str, tenant_id: uuid.UUID | None = None) -> uuid.UUID:
        tenant = tenant_id or uuid.uuid4()
        await self.accounts.create_user(email, "seller", tenant, PASSWORD)
        return tenant


def build_accounts(pool: asyncpg.Pool, limits: LoginLimits | None = None) -> Accounts:
    return Accounts(
        PostgresAccountStore(pool),
        Argon2Hasher(),
        session_ttl=timedelta(hours=1),
        link_ttl=timedelta(minutes=30),
        invite_ttl=timedelta(hours=24),
        limits=limits or LoginLimits(per_email=3, per_address=10),
    )


def build_app(
    accounts: Accounts,
    pool: asyncpg.Pool,
    *,
    reads_target: str = "127.0.0.1:9",
    secure_cookies: bool = False,
    agent_target: str = "127.0.0.1:9",
    wizard: SetupWizard | None = None,
) -> object:
    """The console app. The read APIs' channels point at a closed port unless ``reads_target``
    names a server of fakes (the events pages are tested against real services in tests/e2e);
    the agent's, unless given, too."""
    app = create_app("console")
    nowhere = {
        name: client_channel(reads_target, local_dev_token("console"))
        for name in ("ingestion", "matcher", "dispatcher", "provisioner")
    }
    dead = DeadLetters(GrpcDeadLetterQueue(nowhere["dispatcher"], timeout_s=1.0))
    delivery = GrpcDeliveryHealth(nowhere["dispatcher"], timeout_s=1.0)
    webhooks = GrpcWebhookActivity(nowhere["ingestion"], timeout_s=1.0)
    history = PostgresEmqHistory(pool)
    quality = Quality(GrpcMatchStats(nowhere["matcher"], timeout_s=1.0), history, delivery)
    source = GrpcEventSource(**nowhere, timeout_s=1.0)
    wizard = wizard or SetupWizard(MemoryWizardStore(), FakeRegistry(), FakeChecks())
    uses = web.UseCases(
        accounts,
        Events(source),
        dead,
        quality,
        BuildOverview(quality, dead, delivery, webhooks),
        StatusHub(),
        Assistant(
            GrpcAssistant(
                client_channel(agent_target, local_dev_token("console")),
                timeout_s=5.0,
                turn_timeout_s=10.0,
            )
        ),
        wizard,
        TenantHealthList(source, delivery, webhooks, history, MemoryWizardStore()),
    )
    router = web.build_web(uses, WebConfig(secure_cookies, session_max_age_s=3600))
    web.configure(app, router, accounts)
    return app


@pytest.fixture
async def console(database_url: str) -> AsyncIterator[Console]:
    pool = await create_pool(PostgresSettings(url=database_url), schema="console")
    accounts = build_accounts(pool)
    server = await start_grpc_server(
        GrpcSettings(port=0, callers=local_dev_callers()),
        partial(
            pb_grpc.add_UserAdminServiceServicer_to_server,
            UserAdminServicer(accounts, PUBLIC_URL),
        ),
        [USER_ADMIN_SERVICE],
        POLICY,
    )
    try:
        yield Console(accounts, pool, build_app(accounts, pool), server.port)
    finally:
        await server.stop(0)
        await pool.close()


async def csrf_of(client: httpx.AsyncClient, path: str = "/entrar") -> str:
    """Open a page as a browser would: the CSRF cookie is set and the form carries its value."""
    page = await client.get(path)
    found = CSRF_INPUT.search(page.text)
    assert found, page.text
    return found.group(1)


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    token = await csrf_of(client)
    return await client.post(
        "/entrar", data={"email": email, "senha": password, "csrf_token": token}
    )


async def run_cli(port: int, *args: str, stdin: str = "") -> tuple[int, str, str]:
    """`trackai ARGS...` as a separate process against the console's gRPC API on ``port``."""
    env = {**os.environ, "CONSOLE_GRPC_TARGET": f"127.0.0.1:{port}", "GRPC_CLIENT_TOKEN": TOKEN}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "trackai_cli.main",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin.encode())
    return int(proc.returncode or 0), out.decode(), err.decode()
