"""The overview's action banners (breaker, webhook 401s, DLQ, EMQ, coverage) with their fixes,
the quality page's parameter coverage, the EMQ history (``console.emq_daily``) and the
operators' tenant-health list: the real console app against in-memory fakes of the dispatcher,
ingestion, matcher and provisioner APIs on a real gRPC server (as the console identity)."""

from __future__ import annotations

import html
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from trackai.dispatcher.v1 import dispatcher_service_pb2 as disp
from trackai.dispatcher.v1 import dispatcher_service_pb2_grpc as disp_grpc
from trackai.ingestion.v1 import ingestion_service_pb2 as ing
from trackai.ingestion.v1 import ingestion_service_pb2_grpc as ing_grpc
from trackai.matcher.v1 import matcher_service_pb2 as mat
from trackai.matcher.v1 import matcher_service_pb2_grpc as mat_grpc
from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as prov_grpc
from trackai_console.adapters.emq_store import PostgresEmqHistory
from trackai_console.adapters.read_apis import GrpcEventSource, GrpcMatchStats
from trackai_console.service_layer.quality import Quality
from trackai_kit.grpc import AccessPolicy, client_channel, local_dev_token, rpcs, start_grpc_server
from trackai_kit.settings import GrpcSettings, local_dev_callers

from .conftest import PASSWORD, Console, build_app, sign_in

pytestmark = pytest.mark.integration
Context = grpc.aio.ServicerContext[Any, Any]
NOW = datetime.now(UTC)
_SERVICES = (
    disp.DESCRIPTOR.services_by_name["DispatcherService"],
    ing.DESCRIPTOR.services_by_name["IngestionService"],
    mat.DESCRIPTOR.services_by_name["MatcherService"],
    prov.DESCRIPTOR.services_by_name["TenantRegistryService"],
)


def _ts(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


@dataclass
class Upstream:
    """What the fakes answer, per tenant."""

    destinations: list[disp.DestinationHealth] = field(default_factory=list)
    coverage: dict[str, tuple[int, dict[str, int]]] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)
    refused: dict[str, list[ing.CredentialMismatch]] = field(default_factory=dict)
    last_webhook: dict[str, datetime] = field(default_factory=dict)
    emq: dict[str, float] = field(default_factory=dict)
    tenants: list[prov.Tenant] = field(default_factory=list)
    matcher_down: bool = False
    stats_calls: int = 0


class FakeDispatcher(disp_grpc.DispatcherServiceServicer):
    def __init__(self, up: Upstream) -> None:
        self.up = up

    async def ListDestinationHealth(self, request: Any, context: Context) -> Any:
        return disp.ListDestinationHealthResponse(
            destinations=[
                d
                for d in self.up.destinations
                if not request.tenant_id or d.tenant_id == request.tenant_id
            ]
        )

    async def GetParameterCoverage(self, request: Any, context: Context) -> Any:
        events, carried = self.up.coverage.get(request.tenant_id, (0, {}))
        return disp.GetParameterCoverageResponse(
            events=events,
            parameters=[disp.ParameterCoverage(parameter=k, events=v) for k, v in carried.items()],
        )

    async def ListDeadLetters(self, request: Any, context: Context) -> Any:
        tenant = request.filter.tenant_id
        return disp.ListDeadLettersResponse(
            dead_letters=[
                disp.DeadLetter(
                    event_id=f"{i:064x}", tenant_id=tenant, reason="meta_permanent", attempts=1
                )
                for i in range(self.up.dead.get(tenant, 0))
            ]
        )


class FakeIngestion(ing_grpc.IngestionServiceServicer):
    def __init__(self, up: Upstream) -> None:
        self.up = up

    async def GetWebhookActivity(self, request: Any, context: Context) -> Any:
        since = request.since_time.ToDatetime(tzinfo=UTC)
        last = self.up.last_webhook.get(request.tenant_id)
        return ing.GetWebhookActivityResponse(
            refused=[
                r
                for r in self.up.refused.get(request.tenant_id, [])
                if r.last_time.ToDatetime(tzinfo=UTC) >= since
            ],
            gateways=[
                ing.GatewayActivity(gateway="kiwify", received=1, last_received_time=_ts(last))
            ]
            if last
            else [],
        )


class FakeMatcher(mat_grpc.MatcherServiceServicer):
    def __init__(self, up: Upstream) -> None:
        self.up = up

    async def GetMatchStats(self, request: Any, context: Context) -> Any:
        self.up.stats_calls += 1
        if self.up.matcher_down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "down")
        start = datetime.fromisoformat(request.start_day).date()
        end = datetime.fromisoformat(request.end_day).date()
        emq = self.up.emq.get(request.tenant_id)
        days = []
        for i in range((end - start).days + 1):
            day = (start + timedelta(days=i)).isoformat()
            days.append(
                mat.DailyMatchStats(
                    day=day,
                    conversions=4 if emq is not None else 0,
                    deterministic=3 if emq is not None else 0,
                    unmatched=1 if emq is not None else 0,
                    emq_average=emq or 0.0,
                    low_emq_events=4 if emq is not None and emq < 6 else 0,
                )
            )
        return mat.GetMatchStatsResponse(days=days)


class FakeRegistry(prov_grpc.TenantRegistryServiceServicer):
    def __init__(self, up: Upstream) -> None:
        self.up = up

    async def ListTenants(self, request: Any, context: Context) -> Any:
        start = int(request.page_token or 0)
        size = request.page_size or 50
        page = self.up.tenants[start : start + size]
        more = start + size < len(self.up.tenants)
        return prov.ListTenantsResponse(
            tenants=page, next_page_token=str(start + size) if more else ""
        )


@dataclass
class Setup:
    up: Upstream
    a: str
    b: str
    target: str


@pytest.fixture
async def setup(console: Console) -> AsyncIterator[Setup]:
    up = Upstream()
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    up.tenants = [
        prov.Tenant(id=a, slug="loja-a", name="Loja A"),
        prov.Tenant(id=b, slug="loja-b", name="Loja B", meta_configured=True),
    ]

    def register(server: grpc.aio.Server) -> None:
        disp_grpc.add_DispatcherServiceServicer_to_server(FakeDispatcher(up), server)
        ing_grpc.add_IngestionServiceServicer_to_server(FakeIngestion(up), server)
        mat_grpc.add_MatcherServiceServicer_to_server(FakeMatcher(up), server)
        prov_grpc.add_TenantRegistryServiceServicer_to_server(FakeRegistry(up), server)

    server = await start_grpc_server(
        GrpcSettings(port=0, callers=local_dev_callers()),
        register,
        [s.full_name for s in _SERVICES],
        AccessPolicy.of({"console": [m for s in _SERVICES for m in rpcs(s)]}),
    )
    target = f"127.0.0.1:{server.port}"
    console.app = build_app(console.accounts, console.pool, reads_target=target)
    try:
        yield Setup(up, a, b, target)
    finally:
        await server.stop(0)


def _troubled(setup: Setup) -> None:
    """Tenant A needs everything fixed; tenant B has a breaker of its own on another pixel."""
    up, a, b = setup.up, setup.a, setup.b
    up.destinations = [
        disp.DestinationHealth(
            tenant_id=a,
            pixel_id="1234567890",
            breaker_state=disp.BREAKER_STATE_OPEN,
            consecutive_failures=1,
            last_code=190,
            reason="Error validating access token",
            opened_time=_ts(NOW - timedelta(minutes=5)),
            probe_time=_ts(NOW + timedelta(seconds=30)),
        ),
        disp.DestinationHealth(
            tenant_id=b,
            pixel_id="9999999999",
            breaker_state=disp.BREAKER_STATE_OPEN,
            last_code=0,
            reason="Service temporarily unavailable",
            dead_letters=7,
        ),
    ]
    up.refused[a] = [
        ing.CredentialMismatch(
            gateway="kiwify", credential="kiwify_signature", count=3, last_time=_ts(NOW)
        ),
        # Older than the banner's hour: not shown.
        ing.CredentialMismatch(
            gateway="hotmart",
            credential="hotmart_hottok",
            count=9,
            last_time=_ts(NOW - timedelta(hours=3)),
        ),
    ]
    up.dead[a] = 2
    up.emq[a] = 4.2
    up.coverage[a] = (20, {"em": 6, "ph": 18, "client_ip_address": 20, "client_user_agent": 20})
    up.emq[b] = 8.1


async def test_overview_banners_name_the_problem_and_the_fix(
    console: Console, setup: Setup
) -> None:
    _troubled(setup)
    await console.seller("ana@loja-a.com.br", uuid.UUID(setup.a))
    async with console.client() as client:
        await sign_in(client, "ana@loja-a.com.br")
        # A forged tenant in the URL changes nothing: the session's tenant is read.
        page = await client.get(f"/?tenant={setup.b}")
    assert page.status_code == 200, page.text
    text = html.unescape(page.text)
    banners = [part.split("</div>")[0] for part in text.split('class="banner banner-action"')[1:]]
    assert len(banners) == 5, banners
    breaker, refusal, dead, emq, coverage = banners
    assert "pixel 1234567890) está pausado" in breaker
    assert "Error validating access token" in breaker
    assert "Gerar token" in breaker and 'href="/configuracao/meta"' in breaker
    assert "3 webhook(s) da Kiwify recusado(s) na última hora" in refusal
    assert "Apps → Webhooks" in refusal and 'href="/configuracao/checkout"' in refusal
    assert "Hotmart" not in text
    assert "2 evento(s) na fila de falhas" in dead
    assert "EMQ) está em 4,2" in emq
    assert "e-mail em 30%" in coverage and "telefone" not in coverage
    assert "e-mail obrigatório" in coverage
    # The delivery card, and nothing of tenant B.
    assert "Envio pausado (disjuntor aberto)" in text
    assert "9999999999" not in text and "temporarily" not in text


async def test_a_healthy_tenant_gets_no_banner(console: Console, setup: Setup) -> None:
    setup.up.emq[setup.a] = 7.5
    setup.up.coverage[setup.a] = (
        50,
        {"em": 50, "ph": 45, "client_ip_address": 40, "client_user_agent": 40, "fbp": 30},
    )
    await console.seller("ana@loja-a.com.br", uuid.UUID(setup.a))
    async with console.client() as client:
        await sign_in(client, "ana@loja-a.com.br")
        page = await client.get("/")
    assert page.status_code == 200
    assert "banner-action" not in page.text
    assert "Nenhum pixel com falhas de envio" in html.unescape(page.text)


async def test_quality_page_shows_each_parameters_coverage(console: Console, setup: Setup) -> None:
    _troubled(setup)
    setup.up.coverage[setup.b] = (10, {"em": 10, "ph": 10})
    await console.seller("ana@loja-a.com.br", uuid.UUID(setup.a))
    async with console.client() as client:
        await sign_in(client, "ana@loja-a.com.br")
        page = await client.get(f"/emq?tenant={setup.b}")
    text = html.unescape(page.text)
    assert page.status_code == 200, text
    assert "Dos 20 evento(s) dos últimos 7 dias" in text
    rows = {
        part.split('"')[0]: part.split("</tr>")[0] for part in text.split('data-parameter="')[1:]
    }
    assert list(rows)[:3] == ["em", "ph", "fn"]
    assert "30%" in rows["em"] and 'class="bad"' in text.split('data-parameter="em"')[0][-30:]
    assert "90%" in rows["ph"]
    assert "100%" in rows["client_ip_address"]
    assert "0%" in rows["fbc"]


async def test_emq_history_is_kept_and_read_when_the_matcher_is_down(
    console: Console, setup: Setup
) -> None:
    setup.up.emq[setup.a] = 5.0
    channel = client_channel(setup.target, local_dev_token("console"))
    source = GrpcEventSource(
        ingestion=channel, matcher=channel, dispatcher=channel, provisioner=channel, timeout_s=5
    )
    history = PostgresEmqHistory(console.pool)
    quality = Quality(GrpcMatchStats(channel, timeout_s=5), history, None)  # type: ignore[arg-type]
    try:
        setup.up.emq[setup.a] = 6.5
        assert await quality.snapshot(source.tenants) == 2
        # The next round replaces the figures (the matcher's EMQ moved), and repeating it
        # (another replica) stores the same ones again: never summed.
        setup.up.emq[setup.a] = 5.0
        assert await quality.snapshot(source.tenants) == 2
        assert await quality.snapshot(source.tenants) == 2
    finally:
        await channel.close()
    rows = await console.pool.fetch(
        "SELECT tenant_id, day, events, emq_sum, matched_deterministic, unmatched "
        "FROM console.emq_daily ORDER BY tenant_id, day"
    )
    mine = [r for r in rows if str(r["tenant_id"]) == setup.a]
    assert [r["day"] for r in mine] == [NOW.date() - timedelta(days=1), NOW.date()]
    assert {
        (r["events"], float(r["emq_sum"]), r["matched_deterministic"], r["unmatched"]) for r in mine
    } == {(4, 20.0, 3, 1)}
    assert {r["events"] for r in rows if str(r["tenant_id"]) == setup.b} == {0}

    setup.up.matcher_down = True
    await console.seller("ana@loja-a.com.br", uuid.UUID(setup.a))
    async with console.client() as client:
        await sign_in(client, "ana@loja-a.com.br")
        page = await client.get("/emq")
    text = html.unescape(page.text)
    assert page.status_code == 200, text
    assert "vêm do histórico guardado pelo console" in text
    assert "Média dos últimos 7 dias: <strong>5,0</strong>" in text
    assert "8 venda(s)" in text


async def test_operators_see_every_tenants_health_and_sellers_get_404(
    console: Console, setup: Setup
) -> None:
    _troubled(setup)
    setup.up.last_webhook[setup.b] = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)
    await console.pool.execute(
        "INSERT INTO console.emq_daily (tenant_id, day, events, emq_sum) VALUES "
        "($1, $3, 10, 42.0), ($2, $3, 4, 32.4), ($2, $4, 100, 900)",
        uuid.UUID(setup.a),
        uuid.UUID(setup.b),
        NOW.date(),
        NOW.date() - timedelta(days=30),  # outside the 7 days
    )
    await console.accounts.create_user("ops@trackai.com.br", "operator", None, PASSWORD)
    await console.seller("ana@loja-a.com.br", uuid.UUID(setup.a))
    async with console.client() as client:
        await sign_in(client, "ops@trackai.com.br")
        page = await client.get("/operador/tenants")
    text = html.unescape(page.text)
    assert page.status_code == 200, text
    rows = {part.split('"')[0]: part.split("</tr>")[0] for part in text.split('data-tenant="')[1:]}
    assert list(rows) == [setup.a, setup.b]
    a, b = rows[setup.a], rows[setup.b]
    assert "Precisa de ação" in a and "Envio pausado" in a and "código 190" in a
    assert "4,2" in a and "nenhum em 30 dias" in a and "Não iniciado" in a
    assert "Envio pausado" in b and ">7</a>" in b and "8,1" in b
    assert "01/12/2026 12:30" in b and "Configurado fora do assistente" not in b
    assert "Não iniciado" in b

    async with console.client() as client:
        await sign_in(client, "ana@loja-a.com.br")
        refused = await client.get("/operador/tenants")
        assert refused.status_code == 404
        home = await client.get("/")
        assert "/operador/tenants" not in home.text
