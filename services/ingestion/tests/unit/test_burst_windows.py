"""One log line per key and window, with bounded memory whatever the number of keys."""

from __future__ import annotations

from trackai_ingestion.adapters.telemetry import BurstWindows


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_reported_once_per_window_when_it_reaches_the_threshold() -> None:
    clock = _Clock()
    windows = BurstWindows(window_s=60, threshold=3, clock=clock)
    assert [windows.hit("a") for _ in range(5)] == [None, None, 3, None, None]
    clock.now = 59.9
    assert windows.hit("a") is None
    clock.now = 60.0  # a new window counts from zero again
    assert [windows.hit("a") for _ in range(3)] == [None, None, 3]


def test_many_keys_are_bounded() -> None:
    windows = BurstWindows(window_s=60, threshold=2, max_keys=10)
    for n in range(1000):
        windows.hit(f"key-{n}")
    assert len(windows._windows) == 10
    assert windows.hit("key-999") == 2
