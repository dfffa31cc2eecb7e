"""Client-side rate limits below the providers' quotas (GTM 0.25 requests/s per project,
Cloudflare 1,200 calls per 5 minutes per token): callers wait for a slot instead of being refused.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    """At most ``limit`` acquisitions in any ``window_s`` seconds; ``acquire`` waits for a slot.

    With ``limit=1`` and ``window_s=1/rate`` it spaces calls evenly (GTM's per-second quota).
    """

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("limit must be >= 1 and window_s > 0")
        self._limit = limit
        self._window = window_s
        self._clock = clock
        self._stamps: deque[float] = deque()
        self._lock = asyncio.Lock()

    @classmethod
    def per_second(cls, rate: float) -> SlidingWindow:
        return cls(1, 1.0 / rate)

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                while self._stamps and now - self._stamps[0] >= self._window:
                    self._stamps.popleft()
                if len(self._stamps) < self._limit:
                    self._stamps.append(now)
                    return
                await asyncio.sleep(self._window - (now - self._stamps[0]))
