"""Ingestion's metrics, and the bounded per-tenant window that turns floods into one log line.

Monitoring alarms on ``trackai.ingestion.webhooks.refused`` (by status and reason): a burst of 401s
is someone probing a tenant's webhook URL or a relay whose key or clock is wrong.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from trackai_kit.telemetry import get_meter

_meter = get_meter("trackai.ingestion")
#: Webhooks refused before storage; attributes ``trackai.webhook.status`` (401, 404, 429),
#: ``trackai.webhook.gateway``, ``trackai.webhook.reason``.
WEBHOOKS_REFUSED = _meter.create_counter(
    "trackai.ingestion.webhooks.refused",
    description="Webhooks refused before storage, by HTTP status, gateway and reason",
)
#: Attribute names of the counter above.
ATTR_STATUS = "trackai.webhook.status"
ATTR_GATEWAY = "trackai.webhook.gateway"
ATTR_REASON = "trackai.webhook.reason"


@dataclass
class _Window:
    started: float
    count: int = 0
    reported: bool = False


class BurstWindows:
    """Counts events per key in fixed windows; says when a key first reaches ``threshold``.

    Bounded (least recently seen keys are forgotten), so a flood of distinct keys costs at most
    ``max_keys`` entries. ``hit(key)`` is true once per key and window: log then, not per event.
    """

    def __init__(
        self,
        *,
        window_s: float,
        threshold: int,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self.threshold = threshold
        self._max_keys = max_keys
        self._clock = clock
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def hit(self, key: str) -> int | None:
        """Count one event; the window's count when it has just reached the threshold."""
        now = self._clock()
        window = self._windows.get(key)
        if window is None or now - window.started >= self.window_s:
            window = _Window(now)
            self._windows[key] = window
        self._windows.move_to_end(key)
        while len(self._windows) > self._max_keys:
            self._windows.popitem(last=False)
        window.count += 1
        if window.count >= self.threshold and not window.reported:
            window.reported = True
            return window.count
        return None
