"""Each stage against real PostgreSQL: what it matches, what it records, and what it refuses."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from bench.traffic import ANDROID, EMAIL, IPHONE, PHONE
from bench.traffic import conversion_event as conversion
from bench.traffic import hit_event as hit
from trackai.ingestion.v1 import events_pb2 as ingest
from trackai.matcher.v1 import events_pb2 as mpb
from trackai_kit.identity import event_id

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)


async def test_session_id_through_checkout_is_deterministic(matcher: Any, consumer: Any) -> None:
    tenant = matcher.registry.add_tenant()
    await matcher.feed(
        consumer,
        hit(
            tenant,
            "sess-alpha-0001",
            NOW - dt.timedelta(hours=2),
            ip="189.1.2.3",
            fbp="fb.1.1700000000000.123",
        ),
        hit(tenant, "sess-decoy-0002", NOW - dt.timedelta(hours=1), ip="189.1.2.3"),
        conversion(tenant, "ORD-1", NOW, sck="sess-alpha-0001"),
        conversion(tenant, "ORD-2", NOW, gateway="hotmart", extra={"xcod": "sess-decoy-0002"}),
    )
    first = await matcher.match_of(tenant, "ORD-1")
    assert (first["stage"], first["method"], first["session_id"]) == (
        "deterministic",
        "sck",
        "sess-alpha-0001",
    )
    second = await matcher.match_of(tenant, "ORD-2")
    assert (second["method"], second["session_id"]) == ("xcod", "sess-decoy-0002")
    req1, _ = await matcher.dispatched()
    assert req1.match_stage == mpb.MATCH_STAGE_DETERMINISTIC and req1.match_score == 1.0
    assert req1.event.event_id == event_id(tenant, "kiwify", "ORD-1", "Purchase")
    assert req1.event.user_data.fbp == "fb.1.1700000000000.123"  # from the matched click


async def test_a_session_seen_after_the_purchase_is_not_used(matcher: Any, consumer: Any) -> None:
    tenant = matcher.registry.add_tenant()
    await matcher.feed(
        consumer,
        hit(tenant, "sess-later-0001", NOW + dt.timedelta(minutes=5)),
        conversion(tenant, "ORD-1", NOW, sck="sess-later-0001"),
    )
    assert (await matcher.match_of(tenant, "ORD-1"))["stage"] == "none"


async def test_lead_form_identity_gives_the_most_recent_session(
    matcher: Any, consumer: Any
) -> None:
    tenant = matcher.registry.add_tenant()
    await matcher.feed(
        consumer,
        hit(
            tenant,
            "sess-old-00001",
            NOW - dt.timedelta(days=3),
            kind=ingest.HIT_TYPE_LEAD,
            em=EMAIL,
        ),
        hit(
            tenant,
            "sess-new-00002",
            NOW - dt.timedelta(hours=3),
            kind=ingest.HIT_TYPE_LEAD,
            em=EMAIL,
        ),
        hit(
            tenant,
            "sess-old-99999",
            NOW - dt.timedelta(days=40),
            kind=ingest.HIT_TYPE_LEAD,
            ph=PHONE,
        ),
        conversion(tenant, "ORD-1", NOW),
        conversion(tenant, "ORD-2", NOW, em="", ph=PHONE),
    )
    m1 = await matcher.match_of(tenant, "ORD-1")
    assert (m1["stage"], m1["method"], m1["session_id"]) == (
        "deterministic",
        "email_hash",
        "sess-new-00002",
    )
    # The phone was seen 40 days ago: outside the 30-day look-back.
    assert (await matcher.match_of(tenant, "ORD-2"))["stage"] == "none"


async def test_fbclid_fbc_or_fbp_within_seven_days_is_semi(matcher: Any, consumer: Any) -> None:
    tenant = matcher.registry.add_tenant()
    ms = int((NOW - dt.timedelta(days=2)).timestamp() * 1000)
    await matcher.feed(
        consumer,
        hit(
            tenant,
            "sess-ad-000001",
            NOW - dt.timedelta(days=2),
            fbclid="IwAR0AbCdEf",
            fbc=f"fb.1.{ms}.IwAR0AbCdEf",
        ),
        hit(tenant, "sess-ad-000002", NOW - dt.timedelta(days=9), fbclid="IwAR0Old"),
        hit(tenant, "sess-ad-000003", NOW - dt.timedelta(hours=5), fbp="fb.1.1700000000000.555"),
        conversion(tenant, "ORD-1", NOW, fbc=f"fb.1.{ms}.IwAR0AbCdEf", em=""),
        conversion(tenant, "ORD-2", NOW, fbclid="IwAR0Old", em=""),
        conversion(tenant, "ORD-3", NOW, fbp="fb.1.1700000000000.555", em=""),
    )
    m1 = await matcher.match_of(tenant, "ORD-1")
    assert (m1["stage"], m1["method"], m1["session_id"]) == ("semi", "fbclid", "sess-ad-000001")
    assert (await matcher.match_of(tenant, "ORD-2"))["stage"] == "none"  # 9 days: too old
    m3 = await matcher.match_of(tenant, "ORD-3")
    assert (m3["stage"], m3["method"]) == ("semi", "fbp")


async def test_probabilistic_accepts_a_distinctive_ip_and_ua(matcher: Any, consumer: Any) -> None:
    tenant = matcher.registry.add_tenant()
    events = [
        hit(
            tenant,
            f"sess-noise-{i:05d}",
            NOW - dt.timedelta(hours=i % 60),
            ip=f"177.20.{i % 200}.{i % 250 + 1}",
            ua=ANDROID,
        )
        for i in range(300)
    ]
    events.append(
        hit(
            tenant,
            "sess-buyer-0001",
            NOW - dt.timedelta(minutes=20),
            ip="200.150.10.77",
            ua=IPHONE,
            utm_campaign="black",
        )
    )
    await matcher.feed(consumer, *events)
    await matcher.feed(
        consumer,
        conversion(
            tenant, "ORD-1", NOW, ip="200.150.10.77", ua=IPHONE, utm_campaign="black", em=""
        ),
    )
    m = await matcher.match_of(tenant, "ORD-1")
    assert (m["stage"], m["session_id"]) == ("probabilistic", "sess-buyer-0001")
    assert m["score"] >= 0.97
    evidence = m["evidence"] if isinstance(m["evidence"], dict) else json.loads(m["evidence"])
    features = {e["feature"]: e["outcome"] for e in evidence["matched"]["evidence"]}
    assert features == {
        "ip": "exact",
        "user_agent": "exact",
        "time_gap": "15m-1h",
        "campaign": "agree",
    }
    assert evidence["threshold"] == 0.97


async def test_probabilistic_refuses_a_shared_carrier_ip(matcher: Any, consumer: Any) -> None:
    """Forty sessions behind one carrier address, same phone model: no candidate stands out."""
    tenant = matcher.registry.add_tenant()
    await matcher.feed(
        consumer,
        *[
            hit(
                tenant,
                f"sess-cgnat-{i:04d}",
                NOW - dt.timedelta(minutes=10 + i),
                ip="177.30.1.1",
                ua=ANDROID,
            )
            for i in range(40)
        ],
    )
    await matcher.feed(consumer, conversion(tenant, "ORD-1", NOW, ip="177.30.1.1", ua=ANDROID))
    m = await matcher.match_of(tenant, "ORD-1")
    assert m["stage"] == "none" and m["session_id"] is None
    evidence = m["evidence"] if isinstance(m["evidence"], dict) else json.loads(m["evidence"])
    assert evidence["runner_up"]["score"] < 0.97  # the best rejected candidate stays visible
    [request] = await matcher.dispatched()  # a purchase that matches nothing is still sent
    assert request.match_stage == mpb.MATCH_STAGE_NONE and request.event.user_data.em == [EMAIL]
    # A web purchase with the buyer's browser but no page known (no click, no checkout URL, no
    # funnel landing page): Meta would refuse it as a website event.
    assert request.event.action_source == "other"


async def test_a_later_click_never_steals_an_accepted_match(matcher: Any, consumer: Any) -> None:
    tenant = matcher.registry.add_tenant()
    await matcher.feed(
        consumer,
        hit(tenant, "sess-first-0001", NOW - dt.timedelta(days=1), fbp="fb.1.1700000000000.42"),
        conversion(
            tenant,
            "ORD-1",
            NOW,
            status=ingest.CONVERSION_STATUS_PENDING_PAYMENT,
            method=ingest.PAYMENT_METHOD_PIX,
            fbp="fb.1.1700000000000.42",
            em="",
        ),
        # After the order: a newer session with the same fbp, and the order's session id.
        hit(tenant, "sess-second-002", NOW + dt.timedelta(hours=1), fbp="fb.1.1700000000000.42"),
        conversion(
            tenant,
            "ORD-1",
            NOW + dt.timedelta(days=1),
            sck="sess-second-002",
            fbp="fb.1.1700000000000.42",
            em="",
        ),
    )
    m = await matcher.match_of(tenant, "ORD-1")
    assert (m["stage"], m["session_id"]) == ("semi", "sess-first-0001")
    [request] = await matcher.dispatched()
    assert request.event.event_name == "Purchase"
