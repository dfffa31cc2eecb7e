"""Per-key window counters and the per-source budget of unknown-tenant answers."""

from __future__ import annotations

from trackai_ingestion.service_layer.windows import UnknownTenantLimit, WindowCounter


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_counts_restart_with_each_window() -> None:
    clock = _Clock()
    counter = WindowCounter(60, clock=clock)
    assert [counter.hit("a") for _ in range(3)] == [1, 2, 3]
    clock.now = 59.5
    assert counter.count("a") == (3, 1)
    clock.now = 60.0
    assert counter.count("a") == (0, 0)
    assert counter.hit("a") == 1


def test_memory_is_bounded_whatever_the_number_of_keys() -> None:
    counter = WindowCounter(60, max_keys=10)
    for n in range(1000):
        counter.hit(f"ip-{n}")
    assert len(counter) == 10
    assert counter.hit("ip-999") == 2


def test_over_budget_only_known_tenants_are_looked_up() -> None:
    clock = _Clock()
    limit = UnknownTenantLimit({"real": "config"}.get, per_window=2, clock=clock)
    for _ in range(2):
        assert limit.retry_after("198.51.100.66", "made-up") is None
        limit.unknown("198.51.100.66")
    clock.now = 10.0
    assert limit.retry_after("198.51.100.66", "made-up") == 50
    assert limit.retry_after("198.51.100.66", "real") is None
    assert limit.retry_after("177.67.82.9", "made-up") is None
    assert limit.retry_after(None, "made-up") is None
    clock.now = 60.0
    assert limit.retry_after("198.51.100.66", "made-up") is None
