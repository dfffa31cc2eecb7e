"""The benchmark harness's own logic: percentiles, medians, ratios, selection and the run loop.

Uses in-memory benchmarks only; the heavy baselines are imported (registration) but never run.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

# bench/ is a top-level package run with ``python -m bench`` from the repo root, not an installed
# distribution, so the root must be importable here too.
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import report  # noqa: E402
from bench.context import BenchContext  # noqa: E402
from bench.harness import Result, compute_ratios, run_all  # noqa: E402
from bench.registry import (  # noqa: E402
    REGISTRY,
    Benchmark,
    BenchmarkFunction,
    Metric,
    Ref,
    Registry,
    RunOnce,
    benchmark,
    discover,
)
from bench.settings import BenchSettings  # noqa: E402
from bench.stats import percentile, ratio, summarise, summarise_runs  # noqa: E402


def test_percentile_is_nearest_rank_of_observed_values() -> None:
    samples = [float(v) for v in range(100, 0, -1)]  # unsorted on purpose
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile(samples, 100) == 100.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([7.0], 99) == 7.0


@pytest.mark.parametrize("q", [0, -1, 100.5])
def test_percentile_rejects_out_of_range(q: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], q)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary_is_median_min_max_of_runs() -> None:
    odd = summarise([5.0, 1.0, 9.0, 3.0, 100.0])
    assert (odd.median, odd.minimum, odd.maximum) == (5.0, 1.0, 100.0)
    assert odd.runs == (5.0, 1.0, 9.0, 3.0, 100.0)
    assert summarise([1.0, 2.0, 3.0, 10.0]).median == 2.5


def test_summarise_runs_refuses_a_run_missing_a_declared_metric() -> None:
    runs = [{"a": 1.0, "b": 2.0}, {"a": 3.0}]
    assert summarise_runs(runs, ["a"])["a"].median == 2.0
    with pytest.raises(KeyError, match="'b'"):
        summarise_runs(runs, ["a", "b"])


def test_ratio_divides_and_refuses_zero_reference() -> None:
    assert ratio(50.0, 200.0) == 0.25
    assert ratio(1.0, 0.0) is None


def fixed_runs(
    values: list[dict[str, float]], log: list[str], label: str = ""
) -> BenchmarkFunction:
    """A benchmark function yielding canned runs, recording setup/run/teardown in ``log``."""

    async def function(ctx: BenchContext) -> AsyncIterator[RunOnce]:
        log.append(f"setup{label}")
        remaining = iter(values)

        async def once() -> dict[str, float]:
            log.append(f"run{label}")
            return next(remaining)

        try:
            yield once
        finally:
            log.append(f"teardown{label}")

    return function


def make_registry(log: list[str]) -> Registry:
    registry = Registry()
    benchmark(
        "base.noop",
        metrics=[Metric("throughput", "req/s"), Metric("p99", "ms", higher_is_better=False)],
        registry=registry,
    )(
        fixed_runs(
            # the first value feeds the discarded warm-up run
            [{"throughput": v, "p99": 2.0} for v in (1e9, 100.0, 90.0, 110.0, 1.0, 105.0)],
            log,
            " base",
        )
    )
    benchmark(
        "feature.thing",
        metrics=[
            Metric("throughput", "req/s", ratio_to=Ref("base.noop", "throughput")),
            Metric("bound", "req/s"),
            Metric("efficiency", "req/s", ratio_to=Ref("feature.thing", "bound")),
        ],
        registry=registry,
    )(
        fixed_runs(
            [
                {"throughput": v, "bound": 100.0, "efficiency": v}
                for v in (1e9, 40.0, 50.0, 60.0, 0, 55)
            ],
            log,
            " feature",
        )
    )
    return registry


def context(runs: int, stack: AsyncExitStack) -> BenchContext:
    return BenchContext(quick=False, runs=runs, settings=BenchSettings(), stack=stack)


def test_group_default_and_selection_patterns() -> None:
    registry = make_registry([])
    assert registry.get("feature.thing").group == "feature"
    assert [b.name for b in registry.select(["base"])] == ["base.noop"]
    assert [b.name for b in registry.select(["base.noop"])] == ["base.noop"]
    assert len(registry.select([])) == 2
    with pytest.raises(LookupError, match="no benchmark matches 'bas'"):
        registry.select(["bas"])  # a prefix must end at a dot


def test_selecting_a_benchmark_brings_its_baseline_into_the_same_run() -> None:
    registry = make_registry([])
    assert [b.name for b in registry.select(["feature.thing"])] == ["base.noop", "feature.thing"]


def test_ratio_to_an_unknown_benchmark_or_metric_is_refused() -> None:
    registry = make_registry([])
    for ref in (Ref("missing.bench", "throughput"), Ref("base.noop", "missing")):
        benchmark(
            f"broken.{ref.metric}", metrics=[Metric("x", "u", ratio_to=ref)], registry=registry
        )(fixed_runs([], []))
        with pytest.raises((LookupError, KeyError)):
            registry.select([f"broken.{ref.metric}"])


def test_duplicate_names_are_refused() -> None:
    registry = make_registry([])
    with pytest.raises(ValueError, match="registered twice"):
        benchmark("base.noop", metrics=[Metric("x", "u")], registry=registry)(fixed_runs([], []))
    with pytest.raises(ValueError, match="distinct metric names"):
        benchmark("other", metrics=[Metric("x", "u"), Metric("x", "v")], registry=registry)(
            fixed_runs([], [])
        )


async def test_run_all_interleaves_rounds_and_takes_medians_and_ratios() -> None:
    log: list[str] = []
    registry = make_registry(log)
    async with AsyncExitStack() as stack:
        results = await run_all(registry.select(["feature"]), context(5, stack))
    base, feature = results
    assert base.error is None and feature.error is None
    assert base.summaries["throughput"].median == 100.0
    assert base.summaries["throughput"].minimum == 1.0
    assert base.summaries["throughput"].maximum == 110.0  # the warm-up figure is discarded
    assert feature.summaries["throughput"].median == 50.0
    assert feature.ratios["throughput"] == pytest.approx(0.5)
    assert feature.ratios["efficiency"] == pytest.approx(0.5)  # ratio within one benchmark
    assert "p99" not in base.ratios  # no reference declared, no ratio
    assert log == (
        ["setup base", "setup feature"]
        + ["run base", "run feature"] * 6  # warm-up, then five interleaved rounds
        + ["teardown feature", "teardown base"]
    )
    assert len(base.loadavg) == 5


async def test_non_repeatable_benchmark_runs_once() -> None:
    log: list[str] = []
    registry = Registry()
    benchmark(
        "accuracy.corpus", metrics=[Metric("precision", "%")], repeat=False, registry=registry
    )(fixed_runs([{"precision": 99.6}], log))
    async with AsyncExitStack() as stack:
        (result,) = await run_all(registry.select([]), context(5, stack))
    assert result.summaries["precision"].runs == (99.6,)
    assert log == ["setup", "run", "teardown"]


async def test_a_failing_benchmark_is_reported_torn_down_and_yields_no_ratio() -> None:
    log: list[str] = []
    # Warm-up and one round only, five wanted: the next run raises StopIteration -> RuntimeError.
    registry = Registry()
    benchmark("base.noop", metrics=[Metric("throughput", "req/s")], registry=registry)(
        fixed_runs([{"throughput": 1.0}, {"throughput": 2.0}], log)
    )
    benchmark(
        "feature.thing",
        metrics=[Metric("throughput", "req/s", ratio_to=Ref("base.noop", "throughput"))],
        registry=registry,
    )(fixed_runs([{"throughput": 1.0}] * 6, []))
    async with AsyncExitStack() as stack:
        results = await run_all(registry.select([]), context(5, stack))
    base, feature = results
    assert base.error is not None and base.summaries == {}
    assert log[-1] == "teardown"
    assert feature.error is None and feature.ratios["throughput"] is None
    rendered = report.table(results)
    assert "FAILED" in rendered and "n/a" in rendered


def test_table_shows_medians_units_and_ratio_reference() -> None:
    registry = make_registry([])
    bench: Benchmark = registry.get("feature.thing")
    result = Result(
        bench,
        summaries={
            "throughput": summarise([1234.0, 1500.0, 1000.0]),
            "bound": summarise([2000.0]),
            "efficiency": summarise([0.5]),
        },
        ratios={"throughput": 0.617, "efficiency": 0.5},
    )
    rendered = report.table([result])
    assert "1,234" in rendered and "1,000" in rendered and "1,500" in rendered
    assert "0.62x base.noop:throughput" in rendered
    document = report.to_json([result], {"nproc": 2}, quick=True, runs=3)
    metric = document["results"][0]["metrics"][0]
    assert metric["median"] == 1234.0 and metric["ratio_to"] == "base.noop:throughput"


def test_baselines_register_with_the_names_later_issues_refer_to() -> None:
    discover()
    names = {b.name for b in REGISTRY.all()}
    assert {
        "baseline.http.bare_asgi",
        "baseline.http.fastapi_noop",
        "baseline.postgres.insert_single",
        "baseline.postgres.insert_pool8",
        "baseline.postgres.executemany_1000",
        "baseline.postgres.copy_1000",
        "baseline.amqp.confirm_1",
        "baseline.amqp.confirm_64",
    } <= names
    fastapi = REGISTRY.get("baseline.http.fastapi_noop")
    assert fastapi.metric("throughput").ratio_to == Ref("baseline.http.bare_asgi", "throughput")


def test_compute_ratios_gives_none_for_a_zero_reference() -> None:
    registry = make_registry([])
    base = Result(
        registry.get("base.noop"),
        summaries={"throughput": summarise([0.0]), "p99": summarise([1.0])},
    )
    feature = Result(
        registry.get("feature.thing"),
        summaries={
            "throughput": summarise([10.0]),
            "bound": summarise([40.0]),
            "efficiency": summarise([10.0]),
        },
    )
    compute_ratios([base, feature])
    assert feature.ratios == {"throughput": None, "efficiency": 0.25}


async def test_quick_mode_scales_operations_and_durations_down() -> None:
    async with AsyncExitStack() as stack:
        full = context(5, stack)
        quick = BenchContext(quick=True, runs=3, settings=BenchSettings(), stack=stack)
        assert (full.scale(1000, 100), quick.scale(1000, 100)) == (1000, 100)
        assert (full.seconds(2.0, 0.5), quick.seconds(2.0, 0.5)) == (2.0, 0.5)


async def test_setup_and_teardown_failures_are_reported_without_stopping_others() -> None:
    log: list[str] = []
    registry = Registry()

    async def broken_setup(ctx: BenchContext) -> AsyncIterator[RunOnce]:
        raise ConnectionError("broker down")
        yield  # pragma: no cover - makes this an async generator

    async def broken_teardown(ctx: BenchContext) -> AsyncIterator[RunOnce]:
        async def once() -> dict[str, float]:
            return {"x": 1.0}

        yield once
        raise OSError("could not drop database")

    benchmark("a.setup", metrics=[Metric("x", "u")], registry=registry)(broken_setup)
    benchmark("b.teardown", metrics=[Metric("x", "u")], registry=registry)(broken_teardown)
    benchmark("c.fine", metrics=[Metric("x", "u")], registry=registry)(
        fixed_runs([{"x": 3.0}] * 4, log)
    )
    async with AsyncExitStack() as stack:
        a, b, c = await run_all(registry.select([]), context(3, stack))
    assert a.error == "ConnectionError: broker down" and a.runs == []
    assert b.error == "OSError: could not drop database" and len(b.runs) == 3
    assert c.error is None and c.summaries["x"].median == 3.0
    assert log == ["setup", "run", "run", "run", "run", "teardown"]
