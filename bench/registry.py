"""Benchmark registry: each suite module registers functions under a dotted name and a group.

A benchmark is an async generator taking a :class:`~bench.context.BenchContext`: it sets up
(servers, databases, queues), yields one coroutine function that performs ONE run and returns
``{metric: value}``, and tears down after the yield. The harness calls that function N times.
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from bench.context import BenchContext

RunOnce = Callable[[], Awaitable[dict[str, float]]]
BenchmarkFunction = Callable[[BenchContext], AsyncIterator[RunOnce]]


@dataclass(frozen=True)
class Ref:
    """A metric of a benchmark, used as the denominator of a ratio."""

    benchmark: str
    metric: str

    def __str__(self) -> str:
        return f"{self.benchmark}:{self.metric}"


@dataclass(frozen=True)
class Metric:
    """A figure a benchmark reports on every run.

    ``ratio_to`` names the baseline the figure is divided by; that baseline is measured in the same
    invocation (the harness adds it to the selection when missing). It may name a metric of the same
    benchmark, e.g. a theoretical bound the benchmark computes from its own parameters.
    """

    name: str
    unit: str
    higher_is_better: bool = True
    ratio_to: Ref | None = None


@dataclass(frozen=True)
class Benchmark:
    name: str
    group: str
    description: str
    metrics: tuple[Metric, ...]
    setup: Callable[[BenchContext], AbstractAsyncContextManager[RunOnce]]
    #: False for deterministic figures (precision/recall of a fixed corpus): measured once.
    repeat: bool = True
    #: Run once, discarded, before the measured rounds: cold caches, first connections, lazy
    #: imports and statement preparation do not land in the first figure. Ignored unless ``repeat``.
    warmup: bool = True

    def metric(self, name: str) -> Metric:
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(f"{self.name} has no metric {name!r}")

    @property
    def dependencies(self) -> tuple[str, ...]:
        refs = (m.ratio_to.benchmark for m in self.metrics if m.ratio_to is not None)
        return tuple(dict.fromkeys(ref for ref in refs if ref != self.name))


class Registry:
    """Benchmarks by name, in registration order."""

    def __init__(self) -> None:
        self._benchmarks: dict[str, Benchmark] = {}

    def add(self, bench: Benchmark) -> None:
        if bench.name in self._benchmarks:
            raise ValueError(f"benchmark {bench.name!r} registered twice")
        names = [m.name for m in bench.metrics]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"benchmark {bench.name!r} needs distinct metric names, got {names}")
        self._benchmarks[bench.name] = bench

    def all(self) -> list[Benchmark]:
        return list(self._benchmarks.values())

    def get(self, name: str) -> Benchmark:
        return self._benchmarks[name]

    def select(self, patterns: Sequence[str]) -> list[Benchmark]:
        """Benchmarks matching any pattern (exact name, group, or dotted prefix), plus baselines.

        No pattern selects everything. Every ratio reference is checked, and the benchmarks it
        names are included, so a ratio is always computed against a figure from the same run.
        """
        chosen: set[str] = set()
        for pattern in patterns:
            matches = [b.name for b in self._benchmarks.values() if _matches(b, pattern)]
            if not matches:
                known = ", ".join(self._benchmarks) or "none registered"
                raise LookupError(f"no benchmark matches {pattern!r} (known: {known})")
            chosen.update(matches)
        if not patterns:
            chosen.update(self._benchmarks)
        pending = list(chosen)
        while pending:
            bench = self._benchmarks[pending.pop()]
            for metric in bench.metrics:
                self._check_ref(bench, metric)
            for dependency in bench.dependencies:
                if dependency not in chosen:
                    chosen.add(dependency)
                    pending.append(dependency)
        return [b for b in self._benchmarks.values() if b.name in chosen]

    def _check_ref(self, bench: Benchmark, metric: Metric) -> None:
        ref = metric.ratio_to
        if ref is None:
            return
        target = self._benchmarks.get(ref.benchmark)
        if target is None:
            raise LookupError(f"{bench.name}:{metric.name} is a ratio to unknown benchmark {ref}")
        target.metric(ref.metric)


def _matches(bench: Benchmark, pattern: str) -> bool:
    return pattern in (bench.name, bench.group) or bench.name.startswith(pattern + ".")


REGISTRY = Registry()


def benchmark(
    name: str,
    *,
    metrics: Iterable[Metric],
    group: str | None = None,
    repeat: bool = True,
    warmup: bool = True,
    registry: Registry = REGISTRY,
) -> Callable[[BenchmarkFunction], BenchmarkFunction]:
    """Register an async generator ``f(ctx)`` that yields a one-run coroutine function.

    The group defaults to the first segment of the dotted name (``ingestion.webhook`` ->
    ``ingestion``); the docstring's first line becomes the description printed in the table.
    """

    def register(function: BenchmarkFunction) -> BenchmarkFunction:
        doc = (function.__doc__ or "").strip().splitlines()
        registry.add(
            Benchmark(
                name=name,
                group=group or name.split(".", 1)[0],
                description=doc[0] if doc else "",
                metrics=tuple(metrics),
                setup=contextlib.asynccontextmanager(function),
                repeat=repeat,
                warmup=warmup,
            )
        )
        return function

    return register


def discover(package: str = "bench.suites") -> None:
    """Import every module of the suites package so their registrations run."""
    module = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(module.__path__), key=lambda i: i.name):
        importlib.import_module(f"{package}.{info.name}")
