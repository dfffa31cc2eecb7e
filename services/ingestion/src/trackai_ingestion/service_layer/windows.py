"""Bounded per-key counters over fixed time windows (per tenant, per source IP).

In process, not in Redis: what they protect is per process (one replica's logs, its tenant-config
cache and its calls to the registry), they are consulted on paths where a Redis round trip would
be the larger cost, and they keep working when Redis is down. The memory is bounded whatever the
number of keys an attacker makes up: the least recently seen key is forgotten first.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Window:
    started: float
    count: int = 0


class WindowCounter:
    """``hit(key)`` counts one event in the key's current window and returns the window's count."""

    def __init__(
        self,
        window_s: float,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self._max_keys = max(1, max_keys)
        self._clock = clock
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def _current(self, key: str, now: float) -> _Window | None:
        window = self._windows.get(key)
        if window is None or now - window.started >= self.window_s:
            return None
        return window

    def hit(self, key: str) -> int:
        now = self._clock()
        window = self._current(key, now)
        if window is None:
            window = _Window(now)
            self._windows[key] = window
        self._windows.move_to_end(key)
        while len(self._windows) > self._max_keys:
            self._windows.popitem(last=False)
        window.count += 1
        return window.count

    def count(self, key: str) -> tuple[int, int]:
        """The key's count in its current window and the whole seconds until that window ends."""
        now = self._clock()
        window = self._current(key, now)
        if window is None:
            return 0, 0
        return window.count, max(1, math.ceil(window.started + self.window_s - now))

    def __len__(self) -> int:
        return len(self._windows)


class UnknownTenantLimit:
    """Per source IP, a budget of "unknown tenant" answers per window.

    Over budget, a source's requests are answered only for tenants already in the local cache:
    made-up tenant ids then cost neither a registry call nor a cache entry, while webhooks for
    real tenants (gateways send many tenants' webhooks from the same addresses) go on as before.
    """

    def __init__(
        self,
        known: Callable[[str], object | None],
        *,
        per_window: int = 30,
        window_s: float = 60.0,
        max_sources: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._known = known
        self.per_window = per_window
        self._misses = WindowCounter(window_s, max_keys=max_sources, clock=clock)

    def retry_after(self, source: str | None, tenant_ref: str) -> int | None:
        """None when the lookup may proceed; else the seconds the source must wait."""
        if source is None:
            return None
        count, left = self._misses.count(source)
        if count < self.per_window or self._known(tenant_ref) is not None:
            return None
        return left

    def unknown(self, source: str | None) -> int:
        """Count an unknown-tenant answer to ``source``; the source's count in this window."""
        return self._misses.hit(source) if source is not None else 0
