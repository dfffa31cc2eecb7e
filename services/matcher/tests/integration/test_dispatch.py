"""What reaches `capi-dispatch`: Meta-valid events, one per (order, event), routed per funnel,
with the EMQ estimate, its daily aggregate and the low-EMQ alert."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from bench.traffic import ANDROID, EMAIL, PHONE
from bench.traffic import conversion_event as conversion
from bench.traffic import hit_event as hit
from trackai.ingestion.v1 import events_pb2 as ingest
from trackai.matcher.v1 import events_pb2 as mpb
from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai_dispatcher.adapters.meta import event_payload, wire_event
from trackai_matcher.entrypoints.consumer import IngestConsumer
from trackai_sandbox.meta import build_app
from trackai_sandbox.server import BackgroundServer
from trackai_sandbox.settings import SandboxSettings
from trackai_sandbox.testing import DEMO_PIXEL_ID, DEMO_TOKEN, MetaSandboxClient

pytestmark = pytest.mark.integration
VISITOR = "0a1b2c3d" * 8
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)


@pytest.fixture(scope="module")
def meta() -> Iterator[MetaSandboxClient]:
    with (
        BackgroundServer(build_app(SandboxSettings(meta_seed=3))) as server,
        httpx.Client(base_url=server.base_url, timeout=10) as http,
    ):
        yield MetaSandboxClient(http)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def with_fields(event: ingest.IngestEvent, **fields: Any) -> ingest.IngestEvent:
    """The conversion with ``renewal``, ``checkout_url`` or user-data keys (``db``, ``ge``) set."""
    for name, value in fields.items():
        if name in ("db", "ge"):
            setattr(event.conversion.user_data, name, value)
        else:
            setattr(event.conversion, name, value)
    return event


def meta_event(request: mpb.DispatchRequest) -> dict[str, Any]:
    """The event exactly as the dispatcher posts it to Meta (its own rendering, not a copy)."""
    return wire_event(event_payload(request.event))


async def test_every_dispatch_request_passes_meta_validation(
    matcher: Any, consumer: Any, meta: MetaSandboxClient
) -> None:
    tenant = matcher.registry.add_tenant(test_event_code="TEST42")
    ms = int((NOW - dt.timedelta(hours=3)).timestamp() * 1000)
    await matcher.feed(
        consumer,
        hit(
            tenant,
            "sess-web-00001",
            NOW - dt.timedelta(hours=3),
            ip="189.10.20.30",
            fbclid="IwAR1xYz",
            fbc=f"fb.1.{ms}.IwAR1xYz",
            fbp=f"fb.1.{ms}.98765",
            visitor=VISITOR,
        ),
        hit(
            tenant,
            "sess-web-00001",
            NOW - dt.timedelta(hours=2),
            kind=ingest.HIT_TYPE_LEAD,
            em=EMAIL,
            ph=PHONE,
        ),
        # Deterministic with the click's URL and UA: a website event.
        conversion(tenant, "ORD-1", NOW, sck="sess-web-00001", em=""),
        # Unmatched, with nothing but an e-mail: a web purchase Meta cannot take as a website
        # event (no page, no browser), so "other", never an automatic conversion.
        conversion(tenant, "ORD-2", NOW, gateway="hotmart", em="c" * 64),
        # Unmatched, with IP and UA from the gateway but no page known: "other" too.
        conversion(tenant, "ORD-3", NOW, em="d" * 64, gateway="cakto", ip="200.1.2.3", ua=ANDROID),
        # Unmatched, the gateway names its checkout page and the buyer's browser: website, with
        # birth date and gender.
        with_fields(
            conversion(
                tenant, "ORD-4", NOW, em="e" * 64, gateway="ticto", ip="200.1.2.4", ua=ANDROID
            ),
            checkout_url="https://checkout.ticto.app/O84ABA07F",
            db=sha("19910101"),
            ge=sha("f"),
        ),
        # A subscription renewal: an automatic charge, system_generated even with a browser.
        with_fields(
            conversion(tenant, "ORD-5", NOW, em="f" * 64, gateway="perfectpay", ua=ANDROID),
            renewal=True,
            checkout_url="https://checkout.example.com/x",
        ),
    )
    requests = await matcher.dispatched()
    assert len(requests) == 5
    web = requests[0]
    assert web.event.action_source == "website"
    assert web.event.event_source_url == "https://lp.example.com/oferta"
    ud = web.event.user_data
    assert list(ud.em) == [EMAIL] and list(ud.ph) == [PHONE]  # from the session's lead form
    assert ud.fbc == f"fb.1.{ms}.IwAR1xYz" and ud.fbp == f"fb.1.{ms}.98765"
    assert ud.client_ip_address == "189.10.20.30" and ud.client_user_agent == ANDROID
    # The tracking script's visitor id, exactly as the pixel was given it.
    assert list(ud.external_id) == [VISITOR]
    assert web.test_event_code == "TEST42" and web.pixel_id == DEMO_PIXEL_ID
    assert web.event.custom_data.value == "197.00" and web.event.custom_data.order_id == "ORD-1"
    by_order = {r.event.custom_data.order_id: r.event for r in requests}
    assert (by_order["ORD-2"].action_source, by_order["ORD-2"].event_source_url) == ("other", "")
    assert by_order["ORD-3"].action_source == "other"
    checkout = by_order["ORD-4"]
    assert (checkout.action_source, checkout.event_source_url) == (
        "website",
        "https://checkout.ticto.app/O84ABA07F",
    )
    assert checkout.user_data.client_user_agent == ANDROID
    assert list(checkout.user_data.db) == [sha("19910101")]
    assert list(checkout.user_data.ge) == [sha("f")]
    assert by_order["ORD-5"].action_source == "system_generated"
    assert by_order["ORD-5"].event_source_url == ""
    answer = meta.post_events([meta_event(r) for r in requests], token=DEMO_TOKEN)
    assert answer.status_code == 200, answer.text
    assert answer.json()["events_received"] == 5


async def test_a_funnels_landing_page_makes_an_unmatched_web_purchase_a_website_event(
    matcher: Any, consumer: Any, meta: MetaSandboxClient
) -> None:
    # The conversion names no funnel: the tenant's only landing page is the page.
    funnel = prov.Funnel(
        id=str(uuid.uuid4()), slug="curso", landing_url="https://lp.example.com/curso"
    )
    tenant = matcher.registry.add_tenant(funnels=(prov.FunnelView(funnel=funnel),))
    await matcher.feed(
        consumer,
        conversion(tenant, "ORD-LP", NOW, gateway="perfectpay", ip="200.1.2.5", ua=ANDROID),
    )
    [request] = await matcher.dispatched()
    assert request.match_stage == mpb.MATCH_STAGE_NONE
    assert request.event.action_source == "website"
    assert request.event.event_source_url == "https://lp.example.com/curso"
    answer = meta.post_events([meta_event(request)], token=DEMO_TOKEN)
    assert answer.status_code == 200, answer.text


async def test_emq_is_estimated_aggregated_and_low_values_alert(
    matcher: Any, consumer: Any
) -> None:
    tenant = matcher.registry.add_tenant()
    with capture_logs() as logs:
        await matcher.feed(
            consumer,
            conversion(
                tenant,
                "ORD-RICH",
                NOW,
                em=EMAIL,
                ph=PHONE,
                ip="200.1.2.3",
                ua=ANDROID,
                fbp="fb.1.1700000000000.1",
            ),
            conversion(tenant, "ORD-POOR", NOW, em="", ip="200.1.2.4", ua=ANDROID),
        )
    rich, poor = await matcher.dispatched()
    # em .5, ph .4, fbp .2, ip+ua .15: 1 - .5*.6*.8*.85 = 0.796
    assert rich.emq == pytest.approx(7.96)
    assert poor.emq == pytest.approx(1.5)
    alerts = [e for e in logs if e["event"] == "low event match quality"]
    assert [a["event_id"] for a in alerts] == [poor.event.event_id]
    assert alerts[0]["log_level"] == "warning" and alerts[0]["tenant_id"] == tenant
    assert "200.1.2.4" not in json.dumps(alerts, default=str)
    assert matcher.counter("trackai.matcher.emq_low") == 1
    [day] = await matcher.fetch(
        "SELECT conversions, unmatched, emq_sum, emq_events, low_emq_events "
        "FROM matcher.match_daily_stats WHERE tenant_id = $1",
        tenant,
    )
    assert dict(day) == {
        "conversions": 2,
        "unmatched": 2,
        "emq_sum": Decimal("9.46"),
        "emq_events": 2,
        "low_emq_events": 1,
    }


async def test_status_mapping_refunds_and_pending_pix(matcher: Any, make_service: Any) -> None:
    tenant = matcher.registry.add_tenant()
    consumer = IngestConsumer(make_service(pending_event="InitiateCheckout"))
    pending = dict(
        status=ingest.CONVERSION_STATUS_PENDING_PAYMENT, method=ingest.PAYMENT_METHOD_PIX
    )
    await matcher.feed(
        consumer,
        conversion(tenant, "ORD-1", NOW, **pending),
        conversion(tenant, "ORD-1", NOW + dt.timedelta(hours=5), method=ingest.PAYMENT_METHOD_PIX),
        conversion(
            tenant, "ORD-1", NOW + dt.timedelta(hours=6), status=ingest.CONVERSION_STATUS_COMPLETED
        ),
        conversion(
            tenant, "ORD-1", NOW + dt.timedelta(hours=7), status=ingest.CONVERSION_STATUS_REFUNDED
        ),
        conversion(
            tenant, "ORD-1", NOW + dt.timedelta(hours=8), status=ingest.CONVERSION_STATUS_CHARGEBACK
        ),
    )
    names = [r.event.event_name for r in await matcher.dispatched()]
    assert names == ["InitiateCheckout", "Purchase"]
    log = await matcher.fetch(
        "SELECT status, disposition FROM matcher.conversion_log WHERE tenant_id = $1 ORDER BY id",
        tenant,
    )
    assert [(r["status"], r["disposition"]) for r in log] == [
        ("pending_payment", "queued"),
        ("approved", "queued"),
        ("completed", "duplicate"),
        ("refunded", "not_dispatched"),
        ("chargeback", "not_dispatched"),
    ]
    # The match was decided at the pix order, not at the payment hours later.
    [match] = await matcher.fetch(
        "SELECT purchase_time FROM matcher.matches WHERE tenant_id = $1", tenant
    )
    assert match["purchase_time"] == NOW


async def test_pending_pix_is_silent_by_default(matcher: Any, consumer: Any) -> None:
    tenant = matcher.registry.add_tenant()
    await matcher.feed(
        consumer,
        conversion(
            tenant,
            "ORD-1",
            NOW,
            status=ingest.CONVERSION_STATUS_PENDING_PAYMENT,
            method=ingest.PAYMENT_METHOD_BOLETO,
        ),
    )
    assert await matcher.dispatched() == []


async def test_no_meta_destination_records_but_does_not_publish(
    matcher: Any, consumer: Any
) -> None:
    tenant = matcher.registry.add_tenant(meta=False)
    with capture_logs() as logs:
        await matcher.feed(consumer, conversion(tenant, "ORD-1", NOW))
    assert await matcher.dispatched() == []
    [reg] = await matcher.fetch(
        "SELECT outcome FROM matcher.dedupe_registry WHERE tenant_id = $1", tenant
    )
    assert reg["outcome"] == "no_destination"
    assert any("no Meta destination" in e["event"] for e in logs)
    assert matcher.counter("trackai.matcher.conversions") == 1


async def test_the_matched_clicks_funnel_picks_the_destination(matcher: Any, consumer: Any) -> None:
    funnel = prov.FunnelView(
        funnel=prov.Funnel(
            id="0b4d3a8e-1111-4c1e-9f00-000000000001",
            lookback_days=60,
            test_event_code="FUNNELTEST",
        ),
        meta=prov.MetaPixel(pixel_id="99887766"),
    )
    tenant = matcher.registry.add_tenant(funnels=(funnel,))
    await matcher.feed(
        consumer,
        hit(
            tenant,
            "sess-funnel-001",
            NOW - dt.timedelta(days=45),
            kind=ingest.HIT_TYPE_LEAD,
            em=EMAIL,
            funnel=funnel.funnel.id,
        ),
        conversion(tenant, "ORD-1", NOW),  # found by e-mail 45 days back: the funnel's 60 days
        conversion(tenant, "ORD-2", NOW, em="", gateway="eduzz"),
    )
    funneled, default = await matcher.dispatched()
    assert (funneled.funnel_id, funneled.pixel_id, funneled.test_event_code) == (
        funnel.funnel.id,
        "99887766",
        "FUNNELTEST",
    )
    assert (default.funnel_id, default.pixel_id) == ("", "1234567890")


async def test_the_funnels_pending_payment_event_overrides_the_service_default(
    matcher: Any, make_service: Any
) -> None:
    """A funnel configured with AddPaymentInfo sends it for a pending pix of its session even
    though the service default is InitiateCheckout."""
    sends = prov.FunnelView(
        funnel=prov.Funnel(
            id="0b4d3a8e-2222-4c1e-9f00-000000000002", pending_payment_event="AddPaymentInfo"
        )
    )
    tenant = matcher.registry.add_tenant(funnels=(sends,))
    consumer = IngestConsumer(make_service(pending_event="InitiateCheckout"))
    pending = dict(
        status=ingest.CONVERSION_STATUS_PENDING_PAYMENT, method=ingest.PAYMENT_METHOD_PIX
    )
    await matcher.feed(
        consumer,
        hit(
            tenant,
            "sess-sends-0001",
            NOW - dt.timedelta(hours=1),
            kind=ingest.HIT_TYPE_LEAD,
            em=EMAIL,
            funnel=sends.funnel.id,
        ),
        conversion(tenant, "ORD-A", NOW, **pending),
        conversion(tenant, "ORD-B", NOW, em="", gateway="eduzz", **pending),
    )
    # ORD-A matched the session of the funnel that sends AddPaymentInfo; ORD-B has no funnel:
    # the service default applies.
    names = sorted(r.event.event_name for r in await matcher.dispatched())
    assert names == ["AddPaymentInfo", "InitiateCheckout"]
