"""Schemathesis against the ingress's own OpenAPI document (issue 14's fuzzing): every operation
it publishes — the webhook of every gateway, the collect endpoint — is called over real HTTP
(uvicorn) with real PostgreSQL and a real gRPC registry behind it, with inputs generated from the
schema (valid and invalid). No answer may be a 5xx and nothing may be logged as an error.

Webhooks are generated for a real tenant and each registered gateway in turn, and signed as the
gateway would sign them (so the generated body reaches the parser and the adapter, not only the
signature check); half the collect calls name the real tenant. ``make fuzz`` raises the budget
(``TRACKAI_FUZZ_EXAMPLES``) as for the payload mutations in ``test_webhook_fuzz.py``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from trackai_ingestion.domain.gateways import ADAPTERS

from .conftest import App, AppFactory, Registry, credentials

pytestmark = pytest.mark.integration

FUZZ_EXAMPLES = int(os.environ.get("TRACKAI_FUZZ_EXAMPLES", "0"))
WEBHOOK = "/api/v1/webhooks/{gateway}/{tenant_id}"
COLLECT = "/api/v1/collect/{tenant_ref}"
ORIGIN = "https://loja.example.com"
#: Inputs the schema allows, and inputs it forbids (a body that is not an object, a missing one).
MODES = st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


class _Errors(logging.Handler):
    """Every ERROR the server logs (an unhandled exception in a route, a task nobody awaited)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture
def server_errors() -> Iterator[list[str]]:
    handler = _Errors()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler.seen
    finally:
        root.removeHandler(handler)


@pytest.fixture
async def served(make_app: AppFactory) -> App:
    return await make_app(real_http=True)


@pytest.fixture
def shop(registry: Registry) -> str:
    return registry.add_tenant(allowed_domains=("loja.example.com",))


async def _schema(app: App) -> Any:
    document = (await app.client.get("/openapi.json")).json()
    assert {WEBHOOK, COLLECT} <= set(document["paths"]), "the ingress publishes both operations"
    return schemathesis.openapi.from_dict(document)


def _send_kwargs(case: Any) -> dict[str, Any]:
    """The generated request as httpx arguments, its body as the exact bytes sent (what a
    gateway signs): schemathesis serialises per media type (``json``, or ``data`` as text,
    bytes or a form's fields)."""
    kwargs = case.as_transport_kwargs(base_url="")
    if "json" in kwargs:
        raw = json.dumps(kwargs["json"]).encode()
    else:
        data = kwargs.get("data")
        if isinstance(data, dict | list):
            raw = urlencode(data, doseq=True).encode()
        elif isinstance(data, str):
            raw = data.encode()
        else:
            raw = data or b""
    return {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "headers": dict(kwargs.get("headers") or {}),
        "params": kwargs.get("params"),
        "content": raw,
    }


@settings(
    max_examples=FUZZ_EXAMPLES or 150,
    derandomize=not FUZZ_EXAMPLES,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data(), gateway=st.sampled_from(sorted(ADAPTERS)), mode=MODES)
async def test_webhooks_of_every_gateway_never_answer_5xx(
    served: App,
    shop: str,
    server_errors: list[str],
    data: st.DataObject,
    gateway: str,
    mode: GenerationMode,
) -> None:
    server_errors.clear()
    schema = await _schema(served)
    strategy = schema[WEBHOOK]["POST"].as_strategy(
        mode, path_parameters={"gateway": gateway, "tenant_id": shop}
    )
    case = data.draw(strategy, label="case")
    request = _send_kwargs(case)
    # Signed as the gateway signs, so the body gets past the signature to the parser.
    auth = credentials(gateway, request["content"])
    request["headers"].update(auth.get("headers", {}))
    request["params"] = {**(request["params"] or {}), **auth.get("params", {})}
    answer = await served.client.request(**request)
    where = f"{gateway}: {request['headers'].get('Content-Type')} {request['content'][:200]!r}"
    assert answer.status_code < 500, f"{where}: {answer.status_code} {answer.text}"
    assert server_errors == [], where


@settings(
    max_examples=FUZZ_EXAMPLES or 100,
    derandomize=not FUZZ_EXAMPLES,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data(), ours=st.booleans(), mode=MODES)
async def test_collect_never_answers_5xx(
    served: App,
    shop: str,
    server_errors: list[str],
    data: st.DataObject,
    ours: bool,
    mode: GenerationMode,
) -> None:
    server_errors.clear()
    schema = await _schema(served)
    ref = {"tenant_ref": shop} if ours else None
    case = data.draw(schema[COLLECT]["POST"].as_strategy(mode, path_parameters=ref), label="case")
    request = _send_kwargs(case)
    request["headers"].setdefault("Origin", ORIGIN)
    answer = await served.client.request(**request)
    where = f"{case.path_parameters}: {request['content'][:200]!r}"
    assert answer.status_code < 500, f"{where}: {answer.status_code} {answer.text}"
    assert server_errors == [], where


async def test_the_issues_examples_answer_4xx(served: App, shop: str) -> None:
    """The two bodies issue 14 says answered 500: a Perfect Pay body whose ``customer`` is not an
    object, and deeply nested JSON."""
    examples = [
        ("perfectpay", b'{"token": "0123456789abcdef0123456789abcdef", "customer": "x"}'),
        ("perfectpay", b'{"token": "0123456789abcdef0123456789abcdef", "customer": [1, 2]}'),
        ("kiwify", b'{"a": ' * 5000 + b"1" + b"}" * 5000),
        ("hotmart", b'{"data": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"),
    ]
    for gateway, raw in examples:
        auth = credentials(gateway, raw)
        answer: httpx.Response = await served.client.post(
            f"/api/v1/webhooks/{gateway}/{shop}",
            content=raw,
            headers={"Content-Type": "application/json", **auth.get("headers", {})},
            params=auth.get("params"),
        )
        assert 400 <= answer.status_code < 500, (gateway, raw[:60], answer.text)
