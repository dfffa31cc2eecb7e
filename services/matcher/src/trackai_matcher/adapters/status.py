"""A conversion's matcher status on ``trackai.status`` (routing key ``conversion.<tenant_id>``),
enqueued in the matcher's outbox inside the transaction that records it: open console pages
see the sale move from "received" to "matched" (with its stage and score), "unmatched",
"pending_payment" or "ignored". Ids, stages and statuses only: never personal data."""

from __future__ import annotations

import datetime as dt

from google.protobuf.timestamp_pb2 import Timestamp

from trackai.common.v1 import events_pb2 as common_pb
from trackai_kit import outbox
from trackai_kit.topology import STATUS_EXCHANGE
from trackai_matcher.domain.model import Purchase, Stage
from trackai_matcher.service_layer.ports import Connection

SCHEMA = "matcher"
STATUS_TYPE = common_pb.StatusUpdate.DESCRIPTOR.full_name
#: The stage names the read API (and so the console) uses.
STAGE_NAMES = {
    Stage.DETERMINISTIC: "deterministic",
    Stage.SEMI: "semi_deterministic",
    Stage.PROBABILISTIC: "probabilistic",
    Stage.NONE: "none",
}


def conversion_status(
    purchase: Purchase,
    status: str,
    detail: str,
    *,
    stage: Stage | None = None,
    score: float | None = None,
    at: dt.datetime | None = None,
) -> common_pb.StatusUpdate:
    time = Timestamp()
    time.FromDatetime(at or dt.datetime.now(dt.UTC))
    return common_pb.StatusUpdate(
        tenant_id=purchase.tenant_id,
        entity=common_pb.STATUS_ENTITY_CONVERSION,
        entity_id=purchase.conversion_id or "",
        status=status,
        detail=detail,
        time=time,
        stage=STAGE_NAMES[stage] if stage is not None else "",
        score=score or 0.0,
    )


async def enqueue_status(conn: Connection, message_id: str, update: common_pb.StatusUpdate) -> None:
    """Add ``update`` to the outbox in the caller's transaction (once per ingest message: its
    id is derived from the message's, and the inbox already claimed that one)."""
    if not update.entity_id:  # a message from before conversions carried their id
        return
    await outbox.enqueue(
        conn,
        schema=SCHEMA,
        exchange=STATUS_EXCHANGE,
        routing_key=f"conversion.{update.tenant_id}",
        message_id=f"status.{message_id}",
        message_type=STATUS_TYPE,
        body=update.SerializeToString(),
        headers={outbox.TENANT_HEADER: update.tenant_id},
    )
