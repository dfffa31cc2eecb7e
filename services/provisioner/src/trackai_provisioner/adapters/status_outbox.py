"""Provisioning progress as ``trackai.common.v1.StatusUpdate`` on the ``trackai.status`` exchange,
written to ``provisioner.outbox`` in the caller's transaction (the kit relay publishes it).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from trackai.common.v1 import events_pb2 as common_pb
from trackai_kit.outbox import enqueue
from trackai_kit.topology import STATUS_EXCHANGE
from trackai_provisioner.adapters.repository import Conn
from trackai_provisioner.domain.provisioning import Run, RunStatus

SCHEMA = "provisioner"
STATUS_TYPE = common_pb.StatusUpdate.DESCRIPTOR.full_name


def routing_key(tenant_id: uuid.UUID) -> str:
    """``provisioning.<tenant_id>`` (docs/contracts.md: ``<entity>.<tenant_id>``)."""
    return f"provisioning.{tenant_id}"


def status_update(
    *, tenant_id: uuid.UUID, run_id: uuid.UUID, status: str, detail: str, at: datetime
) -> common_pb.StatusUpdate:
    time = Timestamp()
    time.FromDatetime(at)
    return common_pb.StatusUpdate(
        tenant_id=str(tenant_id),
        entity=common_pb.STATUS_ENTITY_PROVISIONING,
        entity_id=str(run_id),
        status=status,
        detail=detail,
        time=time,
    )


async def enqueue_status(
    conn: Conn, run: Run, detail: str, at: datetime, status: RunStatus | None = None
) -> None:
    """Add the run's StatusUpdate to the outbox, inside the transaction recording the change.

    ``status`` defaults to the run's current status (pass the new one when ``run`` is stale).
    """
    update = status_update(
        tenant_id=run.tenant_id,
        run_id=run.id,
        status=(status or run.status).value,
        detail=detail,
        at=at,
    )
    await enqueue(
        conn,
        schema=SCHEMA,
        exchange=STATUS_EXCHANGE,
        routing_key=routing_key(run.tenant_id),
        message_id=uuid.uuid4().hex,
        message_type=STATUS_TYPE,
        body=update.SerializeToString(),
    )
