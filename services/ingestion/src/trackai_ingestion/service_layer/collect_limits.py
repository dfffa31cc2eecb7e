"""Rate limits of browser hits (docs/runbooks/collect.md): per client address within a tenant, then
per tenant, both GCRA in Redis shared by every replica.

The client ceiling stops one browser, bot or script from flooding a tenant's events; the tenant
ceiling bounds what many addresses together can write for one tenant. The client is asked first,
so a refused flood does not use up the tenant's budget that real visitors share. Redis down: both
fail open (the limiter's ``degraded`` answer), so tracking never stops for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from trackai_ingestion.adapters.rate_limit import RateDecision
from trackai_ingestion.service_layer.windows import WindowCounter
from trackai_kit.logging import get_logger

log = get_logger(__name__)

#: Refusals of one key are logged once per this many seconds (the first of each window).
LOG_WINDOW_S = 60.0
#: Defaults (``INGESTION_COLLECT_*_RATE_LIMIT_PER_MINUTE``): a landing page sends ~5 hits per
#: visitor, so 300 per address is 60 visitors a minute behind one address (an office, a mobile
#: carrier's CGNAT) on one tenant; 6,000 per tenant is a campaign spike of 1,200 visitors a minute.
#: GCRA lets a whole minute's allowance arrive at once, then one hit per ``60 / limit`` seconds.
DEFAULT_CLIENT_LIMIT_PER_MINUTE = 300
DEFAULT_TENANT_LIMIT_PER_MINUTE = 6000


class Limiter(Protocol):
    async def acquire(self, key: str, limit_per_minute: int) -> RateDecision: ...


@dataclass(frozen=True)
class CollectRefusal:
    """A hit over a ceiling: the answer's ``error`` code, detail and ``Retry-After`` seconds."""

    error: str
    detail: str
    retry_after_s: int


class CollectRateLimit:
    """``await limits.check(tenant_id, client)`` -> ``None`` (go on) or a :class:`CollectRefusal`.

    ``client`` is the sender's rate key (``domain.collect.rate_key``: a public IPv4 address or an
    IPv6 /64), ``None`` when the sender is not a public address: those are not limited per client
    (they would put every visitor behind a misconfigured proxy into one budget), only per tenant.
    A limit of 0 turns that ceiling off.
    """

    def __init__(
        self,
        limiter: Limiter,
        *,
        per_client: int = DEFAULT_CLIENT_LIMIT_PER_MINUTE,
        per_tenant: int = DEFAULT_TENANT_LIMIT_PER_MINUTE,
        max_logged_keys: int = 10_000,
    ) -> None:
        self._limiter = limiter
        self.per_client = per_client
        self.per_tenant = per_tenant
        self._logged = WindowCounter(LOG_WINDOW_S, max_keys=max_logged_keys)

    async def check(self, tenant_id: str, client: str | None) -> CollectRefusal | None:
        if client is not None and self.per_client > 0:
            # The address is logged so that an operator can block a flood upstream.
            retry = await self._over(
                f"client:{tenant_id}:{client}",
                self.per_client,
                "browser hits rate limited for one client",
                tenant_id=tenant_id,
                client=client,
            )
            if retry:
                return CollectRefusal(
                    "client_rate_limited",
                    f"this address is over its limit of {self.per_client} hits per minute for "
                    f"this tenant; retry after {retry} s",
                    retry,
                )
        if self.per_tenant > 0:
            retry = await self._over(
                f"tenant:{tenant_id}",
                self.per_tenant,
                "browser hits rate limited for the tenant",
                tenant_id=tenant_id,
            )
            if retry:
                return CollectRefusal(
                    "rate_limited",
                    f"tenant {tenant_id} is over its limit of {self.per_tenant} hits per minute; "
                    f"retry after {retry} s",
                    retry,
                )
        return None

    async def _over(self, key: str, limit: int, message: str, **fields: str) -> int:
        """0 when the hit fits ``key``'s budget, else the seconds to wait (logged once a window)."""
        decision = await self._limiter.acquire(key, limit)
        if decision.allowed:
            return 0
        retry = max(1, decision.retry_after_s)
        if self._logged.hit(key) == 1:
            log.warning(
                message,
                **fields,
                limit_per_minute=limit,
                retry_after_s=retry,
                next_log_within_s=LOG_WINDOW_S,
            )
        return retry
