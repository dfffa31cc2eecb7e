"""Pauses between attempts to reach the broker (or any dependency) that is not up yet: doubling
from ``first`` up to ``ceiling``, and cut short by shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib

FIRST_S = 0.5
CEILING_S = 15.0


class Backoff:
    """``await backoff.pause(stop)`` after each failed attempt; each pause doubles the next."""

    def __init__(self, first_s: float = FIRST_S, ceiling_s: float = CEILING_S) -> None:
        self._ceiling_s = ceiling_s
        self.delay_s = first_s

    async def pause(self, stop: asyncio.Event) -> None:
        """Wait the current delay, or less when ``stop`` is set meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), self.delay_s)
        self.delay_s = min(self.delay_s * 2, self._ceiling_s)
