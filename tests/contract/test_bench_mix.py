"""The end-to-end benchmark's load (``bench/mix.py``): every gateway's webhook, in every status the
mix sends, is what the ingress accepts as that status (the real adapters and service layer, no
I/O), and the mix keeps its proportions. A payload the ingress refused or ignored would make the
benchmark measure the refusal path, or fail its accounting."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.mix import PENDING, SECRETS, SHARES, Mix, webhook  # noqa: E402
from trackai.provisioner.v1 import provisioner_service_pb2 as prov  # noqa: E402
from trackai_ingestion.domain.gateways import WebhookRequest  # noqa: E402
from trackai_ingestion.domain.model import Conversion  # noqa: E402
from trackai_ingestion.service_layer.ports import Accepted, RateDecision, Receipt  # noqa: E402
from trackai_ingestion.service_layer.webhooks import WebhookService  # noqa: E402

TENANT = str(uuid.uuid4())
CASES = [
    (gateway, status)
    for gateway in SHARES
    for status in ("approved", "refunded", *(("pending",) if gateway in PENDING else ()))
]
CANONICAL = {"approved": "approved", "refunded": "refunded", "pending": "pending_payment"}


class _Tenants:
    async def get(self, tenant_ref: str) -> prov.WebhookConfig | None:
        tenant = prov.Tenant(id=TENANT, slug="bench", rate_limit_per_minute=10**8)
        return prov.WebhookConfig(
            view=prov.TenantView(tenant=tenant),
            gateways=[prov.GatewayCredential(gateway=g, secret=s) for g, s in SECRETS.items()],
        )


class _NoLimit:
    async def acquire(self, tenant_id: str, limit_per_minute: int) -> RateDecision:
        return RateDecision(True)


class _Store:
    def __init__(self) -> None:
        self.accepted: list[Conversion] = []
        self.refused: list[str] = []

    async def accept(
        self, tenant_id: uuid.UUID, conversion: Conversion, receipt: Receipt
    ) -> Accepted:
        self.accepted.append(conversion)
        return Accepted(uuid.uuid4(), duplicate=False)

    async def record(self, tenant_id: uuid.UUID, receipt: Receipt) -> None:
        self.refused.append(str(receipt.reason))


def _as_received(raw: bytes) -> tuple[str, WebhookRequest]:
    """The raw HTTP request the load generator writes, as the ingress's route hands it over."""
    head, body = raw.split(b"\r\n\r\n", 1)
    request_line, *lines = head.decode("ascii").split("\r\n")
    path = request_line.split()[1]
    headers = {name.lower(): value.strip() for name, value in (h.split(":", 1) for h in lines)}
    assert int(headers["content-length"]) == len(body)
    return path, WebhookRequest(body, headers, parse_qsl(urlsplit(path).query))


@pytest.mark.parametrize(("gateway", "status"), CASES)
def test_every_gateway_webhook_of_the_mix_is_accepted_as_its_status(
    gateway: str, status: str
) -> None:
    store = _Store()
    service = WebhookService(_Tenants(), _NoLimit(), store, default_rate_limit=100)
    order = f"bench-{gateway}-{status}"
    raw = webhook(8000, TENANT, gateway, order, session="taSession0123456789", status=status)
    path, request = _as_received(raw)
    assert urlsplit(path).path == f"/api/v1/webhooks/{gateway}/{TENANT}"

    answer = asyncio.run(service.receive(gateway, TENANT, request))

    assert answer.status == 200, answer.body
    assert answer.body["status"] == "accepted", (answer.body, store.refused)
    [conversion] = store.accepted
    assert conversion.order_id == order
    assert conversion.status.value == CANONICAL[status]
    # Dated now: Meta refuses events older than seven days, the dispatcher expires them.
    age = dt.datetime.now(dt.UTC) - conversion.event_time
    assert abs(age.total_seconds()) < 120, conversion.event_time


def test_the_mix_has_a_hundred_hits_per_sale_every_gateway_and_each_special_case() -> None:
    mix = Mix(8000, TENANT, "t")
    kinds: Counter[str] = Counter()
    gateways: Counter[str] = Counter()
    journeys = mix.journeys()
    while kinds["approved"] < 400:
        for step in next(journeys):
            kinds[step.kind] += 1
            if step.kind == "approved":
                gateways[step.gateway] += 1
    assert 95 <= kinds["hit"] / kinds["approved"] <= 110, kinds
    assert set(gateways) == set(SHARES), gateways
    for special in ("pending", "duplicate", "refunded"):
        assert 0.01 <= kinds[special] / kinds["approved"] <= 0.15, (special, kinds)
