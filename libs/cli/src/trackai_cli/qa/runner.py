"""`trackai qa`: run the checklist in order against a target and write the report.

    trackai qa [--items 1,7,8] [--non-destructive] [--report-dir DIR]

Exit codes: 0 no critical item failed, 1 a critical item failed (the release is blocked).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from pathlib import Path

import grpc
import httpx
from opentelemetry import propagate, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from trackai_cli.core import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, Context, Output, SubParsers
from trackai_cli.qa import report as rpt
from trackai_cli.qa.checklist import ITEMS, Item
from trackai_cli.qa.checks import Checklist
from trackai_cli.qa.harness import Failed, Skip, Trail
from trackai_cli.qa.settings import QaSettings

#: Log lines kept in a bug report.
LOG_LINES = 25


def _selected(spec: str | None) -> set[int] | None:
    if not spec:
        return None
    return {int(part) for part in spec.split(",") if part.strip()}


def _logs_excerpt(settings: QaSettings, trace_id: str, tenant_id: str) -> str:
    """The local stack's log lines of the item's trace, else those naming the run's tenant."""
    if not settings.log_dir:
        return ""
    traced: list[str] = []
    tenant: list[str] = []
    for log in sorted(Path(settings.log_dir).glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if trace_id in line:
                traced.append(f"{log.stem}: {line[:600]}")
            elif tenant_id and tenant_id in line:
                tenant.append(f"{log.stem}: {line[:600]}")
    return "\n".join((traced or tenant)[-LOG_LINES:])


def _skip_reason(item: Item, settings: QaSettings, chosen: set[int] | None) -> str:
    if chosen is not None and item.number not in chosen:
        return "not selected (--items)"
    if settings.non_destructive and item.destructive:
        return "destructive: left out of the non-destructive subset (helm test)"
    if item.sandbox_only and not settings.meta_sandbox_url:
        return "needs the sandbox fakes' inspection APIs (QA_META_SANDBOX_URL)"
    return ""


async def run_checklist(settings: QaSettings, ctx: Context, chosen: set[int] | None) -> rpt.Report:
    started = rpt.now()
    results: dict[int, rpt.Result] = {}
    async with httpx.AsyncClient(timeout=60, event_hooks={"request": [_traced]}) as http:
        checks = Checklist(settings, ctx, http)
        try:
            for item in ITEMS:
                results[item.number] = await _one(item, checks, settings, chosen, results)
                outcome = results[item.number].outcome.value
                sys.stderr.write(f"qa: item {item.number:>2} {outcome:<8} {item.title}\n")
        finally:
            await checks.close()
    mode = "non-destructive" if settings.non_destructive else "full"
    return rpt.Report(settings.base_url, mode, list(results.values()), started, rpt.now())


async def _traced(request: httpx.Request) -> None:
    """HTTP calls carry the item's trace too (gRPC calls get it from the kit's interceptors)."""
    propagate.inject(request.headers)


async def _one(
    item: Item,
    checks: Checklist,
    settings: QaSettings,
    chosen: set[int] | None,
    done: dict[int, rpt.Result],
) -> rpt.Result:
    reason = _skip_reason(item, settings, chosen)
    if reason:
        return rpt.Result(item, rpt.Outcome.SKIPPED, evidence=reason)
    unmet = [n for n in item.needs if done[n].outcome is not rpt.Outcome.PASSED]
    failed = [n for n in unmet if done[n].outcome in (rpt.Outcome.FAILED, rpt.Outcome.BLOCKED)]
    if failed:
        return rpt.Result(
            item, rpt.Outcome.BLOCKED, evidence=f"blocked by item(s) {failed} (see their reports)"
        )
    if unmet:
        return rpt.Result(item, rpt.Outcome.SKIPPED, evidence=f"needs skipped item(s) {unmet}")
    trail = Trail()
    begun = time.monotonic()
    result = rpt.Result(item, rpt.Outcome.PASSED)
    # One trace per item: every call it makes carries it (traceparent), so the services' log
    # lines and Sentry events of this item share the trace id its bug report names.
    trace_id = random.getrandbits(128)
    span = NonRecordingSpan(
        SpanContext(trace_id, random.getrandbits(64), False, TraceFlags(TraceFlags.SAMPLED))
    )
    trail.trace_id = format(trace_id, "032x")
    try:
        with trace.use_span(span, end_on_exit=False):
            await getattr(checks, f"item{item.number}")(trail)
    except Skip as exc:
        result.outcome, trail.evidence = rpt.Outcome.SKIPPED, [str(exc)]
    except Failed as exc:
        result.outcome, result.expected, result.actual = (
            rpt.Outcome.FAILED,
            exc.expected,
            exc.actual,
        )
    except grpc.aio.AioRpcError as exc:
        result.outcome = rpt.Outcome.FAILED
        result.expected = "the call succeeds"
        result.actual = f"{exc.code().name}: {exc.details()}"
    except Exception as exc:  # any crash is this item's failure, reported as such
        result.outcome = rpt.Outcome.FAILED
        result.expected = "the check runs to its verdict"
        result.actual = f"{type(exc).__name__}: {exc}\n" + "".join(
            traceback.format_exception(exc)[-3:]
        )
    result.seconds = time.monotonic() - begun
    result.path, result.steps, result.trace_id = trail.path, trail.steps, trail.trace_id
    result.evidence = "; ".join(trail.evidence)
    if result.outcome is rpt.Outcome.FAILED:
        result.logs = _logs_excerpt(settings, result.trace_id, checks.tenant_id)
    return result


async def _qa(args: argparse.Namespace, ctx: Context) -> int:
    settings = QaSettings()
    if args.non_destructive:
        settings.non_destructive = True
    try:
        chosen = _selected(args.items)
    except ValueError:
        sys.stderr.write("error: --items takes item numbers, e.g. 1,7,8\n")
        return EXIT_USAGE
    qa_ctx = Context(settings, Output(False))
    try:
        report = await run_checklist(settings, qa_ctx, chosen)
    finally:
        await qa_ctx.close()
    md, xml = rpt.write(report, Path(args.report_dir or settings.report_dir))
    if args.print_report:
        sys.stdout.write(md.read_text() + "\n")
    counts = report.counts()
    sys.stdout.write(
        f"QA gate: {'BLOCKED' if report.release_blocked else 'passed'} "
        f"({', '.join(f'{counts[o]} {o.value}' for o in rpt.Outcome)})\n"
        f"  report: {md}\n  junit:  {xml}\n"
    )
    for r in report.results:
        if r.outcome is rpt.Outcome.FAILED:
            sys.stdout.write(f"  bug report: {md.parent / f'bug-item{r.item.number:02d}.md'}\n")
    return EXIT_REFUSED if report.release_blocked else EXIT_OK


def register(groups: SubParsers) -> None:
    parser = groups.add_parser(
        "qa",
        help="run the release gate's 15-item QA checklist against a stack (docs/qa-checklist.md)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--items", help="only these item numbers, e.g. 1,7,8")
    parser.add_argument(
        "--non-destructive",
        action="store_true",
        help="only the items that touch nothing outside the release (the helm test subset)",
    )
    parser.add_argument("--report-dir", help="where the reports go (QA_REPORT_DIR, ./qa-report)")
    parser.add_argument(
        "--print-report",
        action="store_true",
        help="also print the Markdown report (a Pod's log is where `helm test` shows it)",
    )
    parser.set_defaults(handler=_qa)
