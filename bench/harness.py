"""Runs the selected benchmarks in interleaved rounds and turns the runs into medians and ratios.

Every benchmark is set up first and warmed up by one discarded run; then round r runs each
benchmark once, in order, for r = 1..N.
On a shared machine the load from other work drifts over minutes: interleaving spreads that drift
over all benchmarks alike, so a ratio compares figures taken under similar conditions.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from bench.context import BenchContext
from bench.registry import Benchmark, Ref, RunOnce
from bench.stats import Summary, ratio, summarise_runs


@dataclass
class Result:
    """Outcome of one benchmark: summaries per metric, or the error that stopped it."""

    benchmark: Benchmark
    summaries: dict[str, Summary] = field(default_factory=dict)
    ratios: dict[str, float | None] = field(default_factory=dict)
    error: str | None = None
    #: Set-up, warm-up and runs (teardown excluded), in seconds.
    seconds: float = 0.0
    #: One-minute load average when each run started: how busy the shared machine was.
    loadavg: list[float] = field(default_factory=list)
    runs: list[dict[str, float]] = field(default_factory=list, repr=False)

    def fail(self, exc: BaseException) -> None:
        # One broken benchmark must not hide the others' figures: record, print, carry on.
        if self.error is None:
            self.error = f"{type(exc).__name__}: {exc}"
        traceback.print_exception(exc, file=sys.stderr)


@contextlib.asynccontextmanager
async def _guarded(result: Result, ctx: BenchContext) -> AsyncIterator[RunOnce | None]:
    """Enter the benchmark's setup, turning set-up and teardown failures into ``result.error``.

    Yields None when the setup failed, so the rounds skip this benchmark.
    """
    started = time.perf_counter()
    entered = False
    try:
        async with result.benchmark.setup(ctx) as run_once:
            entered = True
            result.seconds += time.perf_counter() - started
            yield run_once
    except Exception as exc:
        result.fail(exc)
        if not entered:
            yield None


async def run_all(
    benchmarks: Sequence[Benchmark],
    ctx: BenchContext,
    on_round: Callable[[int, int], None] | None = None,
) -> list[Result]:
    """Set up every benchmark, run ``ctx.runs`` interleaved rounds, tear down, compute ratios."""
    results = [Result(bench) for bench in benchmarks]
    async with AsyncExitStack() as stack:
        runners: list[RunOnce | None] = []
        for result in results:
            runners.append(await stack.enter_async_context(_guarded(result, ctx)))
        for result, run_once in zip(results, runners, strict=True):
            bench = result.benchmark
            if run_once is not None and bench.repeat and bench.warmup:
                await _run(result, run_once, keep=False)
        for round_index in range(ctx.runs):
            for result, run_once in zip(results, runners, strict=True):
                wanted = ctx.runs if result.benchmark.repeat else 1
                if run_once is not None and not result.error and len(result.runs) < wanted:
                    await _run(result, run_once, keep=True)
            if on_round is not None:
                on_round(round_index + 1, ctx.runs)
    for result in results:
        if result.error is None:
            try:
                result.summaries = summarise_runs(
                    result.runs, [m.name for m in result.benchmark.metrics]
                )
            except (KeyError, ValueError) as exc:
                result.fail(exc)
    compute_ratios(results)
    return results


async def _run(result: Result, run_once: RunOnce, *, keep: bool) -> None:
    if keep:
        result.loadavg.append(round(os.getloadavg()[0], 2))
    started = time.perf_counter()
    try:
        figures = await run_once()
    except Exception as exc:
        result.fail(exc)
    else:
        if keep:
            result.runs.append(figures)
    result.seconds += time.perf_counter() - started


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
