"""Pure statistics of the harness: percentiles of samples, medians of runs, ratios to baselines.

Kept free of I/O so ``tests/contract/test_bench_harness.py`` can check it without running anything.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0 < q <= 100): a value that was actually observed."""
    if not samples:
        raise ValueError("percentile of an empty sample")
    if not 0 < q <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {q}")
    ordered = sorted(samples)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    """One metric over the runs of a benchmark."""

    median: float
    minimum: float
    maximum: float
    runs: tuple[float, ...]


def summarise(values: Sequence[float]) -> Summary:
    """Median, min and max of one metric's per-run values."""
    if not values:
        raise ValueError("no runs to summarise")
    return Summary(
        median=statistics.median(values),
        minimum=min(values),
        maximum=max(values),
        runs=tuple(values),
    )


def summarise_runs(
    runs: Sequence[Mapping[str, float]], metric_names: Sequence[str]
) -> dict[str, Summary]:
    """Summarise each declared metric across runs; a run missing a declared metric is a bug."""
    summaries: dict[str, Summary] = {}
    for name in metric_names:
        missing = [i for i, run in enumerate(runs) if name not in run]
        if missing:
            raise KeyError(f"metric {name!r} missing from run(s) {missing}")
        summaries[name] = summarise([run[name] for run in runs])
    return summaries


def ratio(value: float, reference: float) -> float | None:
    """``value / reference``, or None when the reference is zero (nothing sensible to say)."""
    if reference == 0:
        return None
    return value / reference
