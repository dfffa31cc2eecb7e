"""Rate limits of browser hits (docs/runbooks/collect.md): per client address within a tenant, then
per tenant, both GCRA in Redis shared by every replica.

The client ceiling stops one browser, bot or script from flooding a tenant's events; the tenant
ceiling bounds what many addresses together can write for one tenant. Both are decided in one
Redis call, all or nothing: a hit refused by either counts against neither, so a refused flood
does not use up the tenant's budget that real visitors share. Redis down: both fail open (the
limiter's ``degraded`` answer), so tracking never stops for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from trackai_ingestion.service_layer.ports import MultiRateLimiter
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


@dataclass(frozen=True)
class _Ceiling:
    key: str
    limit: int
    error: str
    detail: str
    #: Logged (once per key and window) when a hit is refused by this ceiling.
    message: str
    fields: dict[str, str]


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
        limiter: MultiRateLimiter,
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
        ceilings: list[_Ceiling] = []
        if client is not None and self.per_client > 0:
            ceilings.append(
                _Ceiling(
                    f"client:{tenant_id}:{client}",
                    self.per_client,
                    "client_rate_limited",
                    f"this address is over its limit of {self.per_client} hits per minute for "
                    "this tenant",
                    "browser hits rate limited for one client",
                    # The address, so that an operator can block a flood upstream.
                    {"tenant_id": tenant_id, "client": client},
                )
            )
        if self.per_tenant > 0:
            ceilings.append(
                _Ceiling(
                    f"tenant:{tenant_id}",
                    self.per_tenant,
                    "rate_limited",
                    f"tenant {tenant_id} is over its limit of {self.per_tenant} hits per minute",
                    "browser hits rate limited for the tenant",
                    {"tenant_id": tenant_id},
                )
            )
        if not ceilings:
            return None
        decision = await self._limiter.acquire_all([(c.key, c.limit) for c in ceilings])
        if decision.allowed:
            return None
        ceiling = ceilings[decision.refused_by or 0]
        retry = max(1, decision.retry_after_s)
        if self._logged.hit(ceiling.key) == 1:
            log.warning(
                ceiling.message,
                **ceiling.fields,
                limit_per_minute=ceiling.limit,
                retry_after_s=retry,
                next_log_within_s=LOG_WINDOW_S,
            )
        return CollectRefusal(ceiling.error, f"{ceiling.detail}; retry after {retry} s", retry)
