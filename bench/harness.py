"""Runs selected benchmarks N times each and turns the runs into medians and ratios."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.context import BenchContext
from bench.registry import Benchmark, Ref
from bench.stats import Summary, ratio, summarise_runs


@dataclass
class Result:
    """Outcome of one benchmark: summaries per metric, or the error that stopped it."""

    benchmark: Benchmark
    summaries: dict[str, Summary] = field(default_factory=dict)
    ratios: dict[str, float | None] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


async def run_benchmark(bench: Benchmark, ctx: BenchContext) -> Result:
    """Set up once, run ``ctx.runs`` times (once if not repeatable), tear down; never raises."""
    started = time.perf_counter()
    result = Result(bench)
    runs_wanted = ctx.runs if bench.repeat else 1
    try:
        async with bench.setup(ctx) as run_once:
            runs = [await run_once() for _ in range(runs_wanted)]
        result.summaries = summarise_runs(runs, [m.name for m in bench.metrics])
    except Exception as exc:  # one broken benchmark must not hide the others' figures
        result.error = f"{type(exc).__name__}: {exc}"
        result.summaries = {}
        traceback.print_exc()
    result.seconds = time.perf_counter() - started
    return result


def compute_ratios(results: Sequence[Result]) -> None:
    """Fill ``Result.ratios``: median of the metric / median of its reference, same run only."""
    medians: dict[Ref, float] = {
        Ref(r.benchmark.name, name): s.median for r in results for name, s in r.summaries.items()
    }
    for result in results:
        for metric in result.benchmark.metrics:
            if metric.ratio_to is None or metric.name not in result.summaries:
                continue
            reference = medians.get(metric.ratio_to)
            result.ratios[metric.name] = (
                None
                if reference is None
                else ratio(result.summaries[metric.name].median, reference)
            )


async def run_all(
    benchmarks: Sequence[Benchmark],
    ctx: BenchContext,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Run benchmarks in order, report each as it finishes, then compute the ratios."""
    results: list[Result] = []
    for bench in benchmarks:
        result = await run_benchmark(bench, ctx)
        results.append(result)
        if on_result is not None:
            on_result(result)
    compute_ratios(results)
    return results
