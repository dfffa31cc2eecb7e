"""What a benchmark receives: run mode, connection settings and resources shared within one run."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, TypeVar, cast

from bench.settings import BenchSettings

T = TypeVar("T")


class BenchContext:
    """One per ``python -m bench`` invocation; closes shared resources when the run ends."""

    def __init__(self, *, quick: bool, runs: int, settings: BenchSettings, stack: AsyncExitStack):
        self.quick = quick
        self.runs = runs
        self.settings = settings
        self._stack = stack
        self._shared: dict[str, Any] = {}

    def scale(self, full: int, quick: int) -> int:
        """Operation count for this mode: ``--quick`` does fewer operations per run."""
        return quick if self.quick else full

    def seconds(self, full: float, quick: float) -> float:
        """Duration for this mode, for time-bounded loops."""
        return quick if self.quick else full

    async def shared(self, key: str, factory: Callable[[], AbstractAsyncContextManager[T]]) -> T:
        """Enter ``factory()`` once per run under ``key`` (like a session fixture) and reuse it.

        Lets several benchmarks share one temporary database or broker connection; everything is
        closed (database dropped, queues deleted) when the whole run ends.
        """
        if key not in self._shared:
            self._shared[key] = await self._stack.enter_async_context(factory())
        return cast(T, self._shared[key])
