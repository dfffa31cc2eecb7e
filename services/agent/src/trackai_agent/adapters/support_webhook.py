"""Delivers escalations to the support webhook (Slack-compatible) from ``agent.outbox``: a row is
marked published only once the webhook answered 2xx, so a failed delivery is retried with back-off
and never lost."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import httpx

from trackai_agent.adapters.repository import SUPPORT_WEBHOOK_ROUTE
from trackai_kit.logging import get_logger

log = get_logger(__name__)
MAX_BACKOFF_S = 60.0
_LAST_ERROR_MAX = 500


class SupportWebhookRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        url: str,
        *,
        timeout_s: float = 10.0,
        poll_interval_s: float = 1.0,
    ) -> None:
        self._pool = pool
        self._url = url
        self._http = httpx.AsyncClient(timeout=timeout_s)
        self._poll_interval_s = poll_interval_s

    async def aclose(self) -> None:
        await self._http.aclose()

    async def deliver_once(self) -> tuple[int, int]:
        """Post every pending escalation once; returns (delivered, failed)."""
        delivered = failed = 0
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, body FROM agent.outbox WHERE published_at IS NULL "
                "AND routing_key = $1 ORDER BY id LIMIT 50 FOR UPDATE SKIP LOCKED",
                SUPPORT_WEBHOOK_ROUTE,
            )
            for row in rows:
                error = await self._post(bytes(row["body"]))
                if error is None:
                    delivered += 1
                    await conn.execute(
                        "UPDATE agent.outbox SET published_at = now(), attempts = attempts + 1, "
                        "last_error = NULL WHERE id = $1",
                        row["id"],
                    )
                else:
                    failed += 1
                    await conn.execute(
                        "UPDATE agent.outbox SET attempts = attempts + 1, last_error = $2 "
                        "WHERE id = $1",
                        row["id"],
                        error[:_LAST_ERROR_MAX],
                    )
        if failed:
            log.warning("support webhook delivery failed", failed=failed, delivered=delivered)
        return delivered, failed

    async def _post(self, body: bytes) -> str | None:
        try:
            answer = await self._http.post(
                self._url, content=body, headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if answer.status_code >= 300:
            return f"HTTP {answer.status_code}: {answer.text[:200]}"
        return None

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.0
        while not stop.is_set():
            try:
                delivered, failed = await self.deliver_once()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("support webhook relay database error", error=str(exc))
                delivered, failed = 0, 1
            if failed and not delivered:
                backoff = min(MAX_BACKOFF_S, max(self._poll_interval_s, backoff * 2 or 1.0))
            else:
                backoff = self._poll_interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
