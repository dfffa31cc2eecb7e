"""Counts of stored webhook receipts per gateway and outcome (``ingestion.webhook_receipts``)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from trackai_ingestion.service_layer.ports import GatewayActivity


class ReceiptStats:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def since(self, tenant_id: uuid.UUID, since: datetime) -> list[GatewayActivity]:
        # A range of webhook_receipts_tenant_time_idx (tenant_id, received_at DESC); the window
        # is bounded so an old `since` cannot make it scan a tenant's whole history.
        rows = await self._pool.fetch(
            "SELECT gateway, outcome, count(*) AS n, max(received_at) AS last_at "
            "FROM ingestion.webhook_receipts WHERE tenant_id = $1 "
            "AND received_at >= greatest($2::timestamptz, now() - interval '30 days') "
            "GROUP BY gateway, outcome ORDER BY gateway, outcome",
            tenant_id,
            since,
        )
        found: dict[str, GatewayActivity] = {}
        for row in rows:
            activity = found.setdefault(row["gateway"], GatewayActivity(row["gateway"]))
            activity.by_outcome[row["outcome"]] = int(row["n"])
            last = activity.last_received_at
            activity.last_received_at = (
                row["last_at"] if last is None else max(last, row["last_at"])
            )
        return list(found.values())
