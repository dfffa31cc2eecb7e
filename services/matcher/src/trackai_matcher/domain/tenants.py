"""A tenant's matching set-up: funnels, their look-back and where their events go in Meta."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from trackai_matcher.domain.policy import StatusPolicy


@dataclass(frozen=True)
class Destination:
    """A Meta pixel (the dispatcher fetches its token) and the test event code in force."""

    pixel_id: str
    test_event_code: str = ""


@dataclass(frozen=True)
class FunnelSetup:
    id: str
    lookback_days: int
    #: The funnel's own destination; None = the tenant default applies.
    destination: Destination | None
    test_event_code: str = ""
    #: The funnel's event for a pending pix/boleto (``InitiateCheckout``/``AddPaymentInfo``);
    #: None: the funnel sends none.
    pending_event: str | None = None
    #: The funnel's landing page ("" when not set): ``event_source_url`` of a web purchase no
    #: click and no checkout URL locates.
    landing_url: str = ""


@dataclass(frozen=True)
class Route:
    """Where one conversion goes: the funnel it belongs to (None = tenant default) and pixel."""

    funnel_id: str | None
    destination: Destination | None
    #: The funnel's landing page, else the tenant's only one ("" when unknown).
    landing_url: str = ""

    @property
    def reason(self) -> str:
        return "" if self.destination is not None else "no Meta destination configured"


@dataclass(frozen=True)
class TenantSetup:
    tenant_id: str
    default_destination: Destination | None
    funnels: Mapping[str, FunnelSetup] = field(default_factory=dict)

    def lookback(self, funnel_id: str | None, default: dt.timedelta) -> dt.timedelta:
        """The conversion's funnel look-back; unknown funnel: the longest the tenant uses."""
        funnel = self.funnels.get(funnel_id or "")
        if funnel is not None and funnel.lookback_days > 0:
            return dt.timedelta(days=funnel.lookback_days)
        days = [f.lookback_days for f in self.funnels.values() if f.lookback_days > 0]
        return dt.timedelta(days=max(days)) if days else default

    def policy(self, funnel_id: str | None, default: StatusPolicy) -> StatusPolicy:
        """The funnel's status mapping; a conversion of no known funnel uses ``default``."""
        funnel = self.funnels.get(funnel_id or "")
        if funnel is None:
            return default
        return StatusPolicy(
            approved_event=default.approved_event, pending_event=funnel.pending_event
        )

    def route(self, funnel_id: str | None) -> Route:
        """The funnel's own destination, else the tenant default (with the funnel's test code)."""
        funnel = self.funnels.get(funnel_id or "")
        if funnel is None:
            return Route(None, self.default_destination, self._only_landing_url())
        landing = funnel.landing_url or self._only_landing_url()
        if funnel.destination is not None:
            code = funnel.destination.test_event_code or funnel.test_event_code
            return Route(funnel.id, Destination(funnel.destination.pixel_id, code), landing)
        if self.default_destination is None:
            return Route(funnel.id, None, landing)
        code = funnel.test_event_code or self.default_destination.test_event_code
        return Route(funnel.id, Destination(self.default_destination.pixel_id, code), landing)

    def _only_landing_url(self) -> str:
        """The landing page when all the tenant's funnels share one (a single site), else ""."""
        urls = {f.landing_url for f in self.funnels.values() if f.landing_url}
        return urls.pop() if len(urls) == 1 else ""


#: What the matcher knows about a tenant the registry does not know.
def unknown_tenant(tenant_id: str) -> TenantSetup:
    return TenantSetup(tenant_id, None)
