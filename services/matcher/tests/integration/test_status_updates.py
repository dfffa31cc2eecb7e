"""The matcher tells ``trackai.status`` what it made of each conversion (``conversion.<tenant>``),
through its outbox in the transaction that records it: matched with stage and score, unmatched,
pending payment, ignored; once per message, ids and statuses only."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from bench.traffic import EMAIL, PHONE
from bench.traffic import conversion_event as conversion
from bench.traffic import hit_event as hit
from trackai.common.v1 import events_pb2 as common_pb
from trackai.ingestion.v1 import events_pb2 as ingest

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)


async def test_each_conversion_tells_the_console_what_the_matcher_made_of_it(
    matcher: Any, consumer: Any
) -> None:
    tenant = matcher.registry.add_tenant()
    other = matcher.registry.add_tenant()
    matched = conversion(tenant, "ORD-1", NOW, sck="sess-status-0001", ph=PHONE)
    unmatched = conversion(tenant, "ORD-2", NOW, em="c" * 64, gateway="hotmart")
    pending = conversion(
        tenant,
        "ORD-3",
        NOW,
        status=ingest.CONVERSION_STATUS_PENDING_PAYMENT,
        method=ingest.PAYMENT_METHOD_BOLETO,
    )
    refunded = conversion(tenant, "ORD-1", NOW, status=ingest.CONVERSION_STATUS_REFUNDED)
    elsewhere = conversion(other, "ORD-9", NOW, em="d" * 64)
    await matcher.feed(
        consumer,
        hit(tenant, "sess-status-0001", NOW - dt.timedelta(hours=2), em=EMAIL),
        matched,
        unmatched,
        pending,
        refunded,
        elsewhere,
        matched,  # a redelivery changes nothing, and tells nothing twice
    )
    updates = await matcher.statuses()
    seen = [(key, u.tenant_id, u.entity, u.entity_id, u.status, u.stage) for key, u in updates]
    assert seen == [
        (f"conversion.{tenant}", tenant, common_pb.STATUS_ENTITY_CONVERSION,
         matched.conversion.conversion_id, "matched", "deterministic"),
        (f"conversion.{tenant}", tenant, common_pb.STATUS_ENTITY_CONVERSION,
         unmatched.conversion.conversion_id, "unmatched", "none"),
        (f"conversion.{tenant}", tenant, common_pb.STATUS_ENTITY_CONVERSION,
         pending.conversion.conversion_id, "pending_payment", ""),
        (f"conversion.{tenant}", tenant, common_pb.STATUS_ENTITY_CONVERSION,
         refunded.conversion.conversion_id, "ignored", ""),
        (f"conversion.{other}", other, common_pb.STATUS_ENTITY_CONVERSION,
         elsewhere.conversion.conversion_id, "unmatched", "none"),
    ]  # fmt: skip
    assert "Purchase" in updates[0][1].detail
    # Hashes and order ids stay out of what open pages receive.
    for _, update in updates:
        text = str(update)
        assert EMAIL not in text and PHONE not in text and "ORD-" not in text


async def test_a_probabilistic_match_carries_its_score(matcher: Any, make_service: Any) -> None:
    from trackai_matcher.entrypoints.consumer import IngestConsumer

    consumer = IngestConsumer(make_service(threshold=0.0))
    tenant = matcher.registry.add_tenant()
    ua = "Mozilla/5.0 (Linux; Android 14; SM-A546E) Chrome/124.0.0.0 Mobile Safari/537.36"
    await matcher.feed(
        consumer,
        hit(tenant, "sess-prob-00001", NOW - dt.timedelta(minutes=20), ip="189.10.20.30", ua=ua),
        conversion(tenant, "ORD-P", NOW, em="", ip="189.10.20.30", ua=ua),
    )
    [(_, update)] = await matcher.statuses()
    [match] = await matcher.fetch("SELECT stage, score FROM matcher.matches")
    assert (
        (update.status, update.stage)
        == ("matched", "probabilistic")
        == (
            "matched",
            match["stage"],
        )
    )
    assert update.score == pytest.approx(float(match["score"])) and update.score > 0
