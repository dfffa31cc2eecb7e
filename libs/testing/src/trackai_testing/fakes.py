"""Service-agnostic fakes for unit tests of service layers: a clock the test moves, a recorder
of the calls made to an outbound port, and a scripted answerer. A service's own in-memory stores
(which speak its value types) live next to its unit tests, since libraries never import
services."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any


class FakeClock:
    """``clock()`` answers the current fake time; ``advance`` moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class Recorder:
    """Any async method called on it is recorded as ``(name, args)`` and answers ``None``
    (or what ``answers[name]`` computes from the arguments); ``fail[name]`` raises instead.

    Stands in for outbound ports that only publish or notify (``publisher.delay(...)``).
    """

    def __init__(
        self,
        answers: dict[str, Callable[..., Any]] | None = None,
        fail: dict[str, BaseException] | None = None,
    ) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self._answers = answers or {}
        self._fail = fail or {}

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args + tuple(kwargs.values())))
            if name in self._fail:
                raise self._fail[name]
            answer = self._answers.get(name)
            return None if answer is None else answer(*args, **kwargs)

        return call

    def args(self, name: str) -> list[tuple[Any, ...]]:
        """The arguments of every call to ``name``, in order."""
        return [args for called, args in self.calls if called == name]


class Scripted:
    """An async callable answering its script in order (an exception in it is raised); the
    last answer repeats. ``calls`` keeps the arguments."""

    def __init__(self, script: Iterable[Any]) -> None:
        self._script = list(script)
        self.calls: list[tuple[Any, ...]] = []

    async def __call__(self, *args: Any) -> Any:
        self.calls.append(args)
        answer = self._script.pop(0) if len(self._script) > 1 else self._script[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer
