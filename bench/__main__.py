"""Command line: ``python -m bench [names...] [--quick] [--runs N] [--json out.json] [--list]``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path

import uvloop

from bench import report
from bench.context import BenchContext
from bench.harness import run_all
from bench.registry import REGISTRY, discover
from bench.settings import BenchSettings

FULL_RUNS = 5
QUICK_RUNS = 3


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names", nargs="*", help="benchmark names, groups or dotted prefixes (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="3 runs with fewer operations")
    parser.add_argument(
        "--runs", type=_positive, help="override the number of measured runs per benchmark"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument("--list", action="store_true", help="list benchmarks and exit")
    return parser.parse_args(argv)


#: Exit status of a run stopped by SIGTERM, SIGHUP or SIGINT (128 + SIGTERM, as a shell reports).
STOPPED = 143


def _cancel_on_signals() -> None:
    """SIGTERM, SIGHUP and SIGINT cancel the run instead of ending the process where it stands,
    so every suite's teardown runs: the service processes and servers it started are stopped
    (``process_server``) and its temporary databases dropped. Without this a stopped ``make
    bench`` left them running, holding their ports."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)


async def run(args: argparse.Namespace) -> int:
    _cancel_on_signals()
    selected = REGISTRY.select(args.names)
    runs = args.runs or (QUICK_RUNS if args.quick else FULL_RUNS)
    machine = report.machine_info()
    print(report.header(machine, quick=args.quick, runs=runs), end="\n\n", flush=True)
    started = time.perf_counter()
    async with AsyncExitStack() as stack:
        ctx = BenchContext(quick=args.quick, runs=runs, settings=BenchSettings(), stack=stack)
        results = await run_all(selected, ctx, on_round=report.progress)
        # Printed before shared resources close, so a failing cleanup cannot hide the figures.
        print(report.table(results))
        print(f"\nwhat was measured (total {time.perf_counter() - started:.0f} s):")
        print(report.legend(results))
        if args.json:
            document = report.to_json(results, machine, quick=args.quick, runs=runs)
            args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 1 if any(r.error for r in results) else 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # The suites run services on the test defaults; Settings default to production.
    os.environ.setdefault("TRACKAI_ENV", "test")
    discover()
    if args.list:
        for bench in REGISTRY.all():
            print(f"{bench.name:40} {bench.group:12} {bench.description}")
        return 0
    try:
        REGISTRY.select(args.names)
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # The whole harness (load generator included) runs on uvloop, like the services will.
    try:
        return uvloop.run(run(args))
    except asyncio.CancelledError:
        print("\nstopped: every started server and database was cleaned up", file=sys.stderr)
        return STOPPED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
