"""Machine header, result table and JSON document of a benchmark run."""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from bench.harness import Result


def machine_info() -> dict[str, Any]:
    """What the figures depend on: cores, CPU, Python, event loop, load when the run started."""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "host": socket.gethostname(),
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "packages": {name: _version(name) for name in _PACKAGES},
    }


_PACKAGES = ("uvicorn", "uvloop", "httptools", "fastapi", "asyncpg", "aio-pika")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def header(machine: dict[str, Any], *, quick: bool, runs: int) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
    return "\n".join(
        [
            f"Track AI benchmarks - {machine['date']} on {machine['host']}",
            f"machine: nproc={machine['nproc']} ({machine['cpu']}), {machine['python']}, "
            f"{machine['platform']}, load average at start {machine['loadavg_at_start']}",
            f"packages: {packages}",
            f"mode: {'quick' if quick else 'full'}, median of {runs} runs (min/max shown), "
            "runs interleaved round-robin across benchmarks",
            f"note: servers, PostgreSQL, RabbitMQ and the load generator all share these "
            f"{machine['nproc']} cores; figures are floors for this box, not for production.",
        ]
    )


def format_number(value: float) -> str:
    """Thousands separators for big figures, three significant digits for small ones."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if value == 0:
        return "0"
    return f"{value:.3g}" if abs(value) >= 0.001 else f"{value:.2e}"


def table(results: Sequence[Result]) -> str:
    rows: list[tuple[str, ...]] = [
        ("benchmark", "metric", "median", "min", "max", "unit", "ratio (median / baseline)")
    ]
    for result in results:
        bench = result.benchmark
        if result.error is not None:
            rows.append((bench.name, "FAILED", "", "", "", "", result.error[:80]))
            continue
        for index, metric in enumerate(bench.metrics):
            summary = result.summaries[metric.name]
            ratio_text = ""
            if metric.ratio_to is not None:
                value = result.ratios.get(metric.name)
                ratio_text = "n/a" if value is None else f"{value:.2f}x {metric.ratio_to}"
            rows.append(
                (
                    bench.name if index == 0 else "",
                    metric.name,
                    format_number(summary.median),
                    format_number(summary.minimum),
                    format_number(summary.maximum),
                    metric.unit,
                    ratio_text,
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    numeric = {2, 3, 4}
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if row is rows[0]:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def legend(results: Sequence[Result]) -> str:
    return "\n".join(
        f"  {r.benchmark.name}: {r.benchmark.description} ({r.seconds:.1f} s{_load(r.loadavg)})"
        for r in results
    )


def _load(loadavg: Sequence[float]) -> str:
    return f", load {min(loadavg):g}-{max(loadavg):g}" if loadavg else ""


def to_json(results: Sequence[Result], machine: dict[str, Any], *, quick: bool, runs: int) -> Any:
    return {
        "machine": machine,
        "mode": "quick" if quick else "full",
        "runs": runs,
        "results": [
            {
                "name": r.benchmark.name,
                "group": r.benchmark.group,
                "description": r.benchmark.description,
                "seconds": round(r.seconds, 3),
                "loadavg_per_run": r.loadavg,
                "error": r.error,
                "metrics": [
                    {
                        "name": m.name,
                        "unit": m.unit,
                        "higher_is_better": m.higher_is_better,
                        "median": r.summaries[m.name].median,
                        "min": r.summaries[m.name].minimum,
                        "max": r.summaries[m.name].maximum,
                        "runs": list(r.summaries[m.name].runs),
                        "ratio_to": str(m.ratio_to) if m.ratio_to else None,
                        "ratio": r.ratios.get(m.name),
                    }
                    for m in r.benchmark.metrics
                    if m.name in r.summaries
                ],
            }
            for r in results
        ],
    }


def progress(done: int, total: int) -> None:
    print(f"  round {done}/{total} done", file=sys.stderr, flush=True)
