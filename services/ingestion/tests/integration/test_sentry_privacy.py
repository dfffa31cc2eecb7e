"""What reaches Sentry when a webhook request fails: the ingestion app served by uvicorn over real
HTTP, the real Sentry SDK configured as in production (``configure_sentry`` with a DSN) and the
sandbox's Sentry fake receiving the envelopes. Neither the tenant's decrypted secrets nor the
buyer's personal data may arrive, whatever the request's outcome."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import sentry_sdk
import structlog
from pydantic import SecretStr

from trackai_kit.logging import configure_logging
from trackai_kit.sentry import configure_sentry
from trackai_kit.settings import LogSettings, SentrySettings
from trackai_sandbox.sentry import SentrySink

from ..conftest import fixture_json
from .conftest import AppFactory, Registry

pytestmark = pytest.mark.integration

# Values built at run time so that no literal sits in this file's source lines (Sentry ships the
# lines around a failing frame; the secrets must be absent because they were scrubbed, not
# because they were never near the frame).
_RUN = uuid.uuid4().hex[:10]
PERFECTPAY_TOKEN = "pp" + _RUN + "perfectpaytoken"
HOTTOK = "hot" + _RUN + "hottokvalue"
NAME = "Maria " + "Aparecida Souza"
EMAIL = "maria." + _RUN + "@example.com"
CPF = "123 456" + " 789 09"
PHONE = "+55 11 9 " + "1234-5678"
LEAKS = (PERFECTPAY_TOKEN, HOTTOK, NAME, "Aparecida", EMAIL, CPF, PHONE, "1234-5678")


@pytest.fixture(scope="module")
def sentry_sink() -> Iterator[SentrySink]:
    with SentrySink() as sink:
        yield sink


@pytest.fixture
def sentry_events(sentry_sink: SentrySink) -> Iterator[SentrySink]:
    """Sentry and logging set up as ``bootstrap_observability`` does in a service process."""
    sentry_sink.reset()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(LogSettings(level="INFO"), "ingestion")
    configure_sentry("ingestion", SentrySettings(dsn=SecretStr(sentry_sink.dsn)), "test")
    yield sentry_sink
    # Back to a disabled client; with the SDK's defaults init() would patch Starlette, httpx,
    # asyncpg... for the rest of the session.
    sentry_sdk.init(default_integrations=False, auto_enabling_integrations=False)
    structlog.reset_defaults()
    root.handlers[:], root.level = handlers, level


@pytest_asyncio.fixture(loop_scope="session")
async def served(make_app: AppFactory, sentry_events: SentrySink) -> httpx.AsyncClient:
    """The ingestion HTTP app behind uvicorn on a free port, Sentry configured first."""
    return (await make_app(real_http=True)).client


def _tenant_with_every_secret(registry: Registry) -> str:
    # Ingestion's view of a tenant holds its gateways' decrypted secrets (no Meta token since
    # the per-caller views).
    return registry.add_tenant(secrets={"perfectpay": PERFECTPAY_TOKEN, "hotmart": HOTTOK})


def _buyer_body() -> dict[str, Any]:
    body = fixture_json("perfectpay-1.json")
    body["token"] = PERFECTPAY_TOKEN
    body["customer"].update(
        full_name=NAME,
        email=EMAIL,
        identification_number=CPF,
        phone_formated=PHONE,
        phone_formated_ddi=PHONE,
    )
    return body


def _received(sink: SentrySink) -> list[dict[str, Any]]:
    sentry_sdk.flush(timeout=10)
    return sink.items()


def _assert_clean(items: list[dict[str, Any]]) -> None:
    dumped = json.dumps(items)
    leaked = [value for value in LEAKS if value in dumped]
    assert not leaked, f"{leaked} reached Sentry"


async def test_a_failing_webhook_sends_sentry_no_secret_and_no_personal_data(
    served: httpx.AsyncClient,
    sentry_events: SentrySink,
    registry: Registry,
    database_url: str,
    pg_pool: Any,
) -> None:
    tenant = _tenant_with_every_secret(registry)
    # An unexpected database error deep in the request, after the tenant's config was fetched
    # and the body parsed: the frames hold both.
    pool = await pg_pool(database_url)
    await pool.execute("ALTER TABLE ingestion.webhook_receipts RENAME TO receipts_gone")
    answer = await served.post(
        f"/api/v1/webhooks/perfectpay/{tenant}",
        content=json.dumps(_buyer_body()).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "PerfectPay"},
    )
    assert answer.status_code == 500
    items = _received(sentry_events)
    events = [i["payload"] for i in items if i["type"] == "event"]
    assert events, "the error must still be reported"
    assert any("UndefinedTable" in json.dumps(e) for e in events)
    # A log line's event is named by its event name, one issue whatever the request (not its
    # whole text, timestamp included).
    messages = [e.get("logentry", {}).get("message") or "" for e in events]
    assert all("timestamp" not in m and tenant not in m for m in messages), messages
    _assert_clean(items)


async def test_deeply_nested_unauthenticated_body_sends_sentry_no_secret(
    served: httpx.AsyncClient, sentry_events: SentrySink, registry: Registry
) -> None:
    tenant = _tenant_with_every_secret(registry)
    depth = 20_000
    nested = ("[" * depth + "]" * depth).encode()
    raw = b'{"token": "wrong", "customer": {"full_name": "' + NAME.encode() + b'"}, "x": '
    answer = await served.post(
        f"/api/v1/webhooks/perfectpay/{tenant}",
        content=raw + nested + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code in {400, 401, 413, 500}
    _assert_clean(_received(sentry_events))
