"""The gate's report: one Markdown file and one JUnit XML file, and for each failure a bug report
ready to file (title, severity, steps, expected, actual, logs excerpt, trace id)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from trackai_cli.qa.checklist import Item, Severity


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    #: A prerequisite item failed, so this one could not be checked.
    BLOCKED = "blocked"
    #: Left out on purpose (non-destructive subset, no sandbox on this target, --items).
    SKIPPED = "skipped"


@dataclass
class Result:
    item: Item
    outcome: Outcome
    #: "console", "agent", "API/CLI", "Chromium" … as driven on this run.
    path: str = ""
    seconds: float = 0.0
    #: What was seen (passed) or why it was skipped/blocked.
    evidence: str = ""
    steps: list[str] = field(default_factory=list)
    expected: str = ""
    actual: str = ""
    logs: str = ""
    trace_id: str = ""

    @property
    def blocks_release(self) -> bool:
        return self.outcome is Outcome.FAILED and self.item.severity is Severity.CRITICAL


@dataclass
class Report:
    target: str
    mode: str
    results: list[Result]
    started: datetime
    finished: datetime

    @property
    def release_blocked(self) -> bool:
        return any(r.blocks_release for r in self.results)

    def counts(self) -> dict[Outcome, int]:
        return {o: sum(r.outcome is o for r in self.results) for o in Outcome}


def bug_report(result: Result, report: Report) -> str:
    """Markdown ready to paste into an issue."""
    item = result.item
    steps = "\n".join(f"{n}. {step}" for n, step in enumerate(result.steps, 1)) or "(none)"
    return "\n".join(
        (
            f"### [QA] item {item.number} failed: {item.title}",
            "",
            f"- **Severity:** {item.severity.value}"
            + (" (blocks the release)" if result.blocks_release else ""),
            f"- **Target:** {report.target} ({report.mode}); path: {result.path or '-'}",
            f"- **Run:** {report.started.isoformat(timespec='seconds')}",
            f"- **Trace id:** {result.trace_id or 'none recorded'}",
            "",
            "**Steps to reproduce**",
            "",
            steps,
            "",
            f"**Expected:** {result.expected or '-'}",
            "",
            f"**Actual:** {result.actual or '-'}",
            "",
            "**Logs (excerpt)**",
            "",
            "```",
            result.logs.strip() or "(no log lines available from this runner)",
            "```",
        )
    )


def markdown(report: Report) -> str:
    counts = report.counts()
    verdict = "BLOCKED: a critical item failed" if report.release_blocked else "PASSED"
    lines = [
        f"# QA gate report: {verdict}",
        "",
        f"- Target: {report.target} ({report.mode})",
        f"- Started {report.started.isoformat(timespec='seconds')}, "
        f"took {(report.finished - report.started).total_seconds():.0f} s",
        "- " + ", ".join(f"{counts[o]} {o.value}" for o in Outcome),
        "",
        "| # | item | severity | path | outcome | s | evidence |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report.results:
        shown = (r.evidence if r.outcome is not Outcome.FAILED else r.actual).replace("|", "/")
        first = shown.splitlines()[0] if shown else ""
        lines.append(
            f"| {r.item.number} | {r.item.title} | {r.item.severity.value} | {r.path or '-'} | "
            f"**{r.outcome.value}** | {r.seconds:.1f} | {first} |"
        )
    failures = [r for r in report.results if r.outcome is Outcome.FAILED]
    if failures:
        lines += ["", "## Bug reports", ""]
        for r in failures:
            lines += [bug_report(r, report), ""]
    return "\n".join(lines) + "\n"


def junit(report: Report) -> bytes:
    counts = report.counts()
    suite = ET.Element(
        "testsuite",
        name="trackai-qa",
        tests=str(len(report.results)),
        failures=str(counts[Outcome.FAILED]),
        errors="0",
        skipped=str(counts[Outcome.SKIPPED] + counts[Outcome.BLOCKED]),
        time=f"{(report.finished - report.started).total_seconds():.1f}",
        timestamp=report.started.isoformat(timespec="seconds"),
    )
    for r in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"qa.{r.item.severity.value}",
            name=f"item{r.item.number:02d} {r.item.title}",
            time=f"{r.seconds:.1f}",
        )
        if r.outcome is Outcome.FAILED:
            failure = ET.SubElement(case, "failure", message=r.actual.splitlines()[0][:500])
            failure.text = bug_report(r, report)
        elif r.outcome in (Outcome.SKIPPED, Outcome.BLOCKED):
            ET.SubElement(case, "skipped", message=f"{r.outcome.value}: {r.evidence}")
        ET.SubElement(case, "system-out").text = f"path: {r.path}\n{r.evidence}"
    data: bytes = ET.tostring(suite, encoding="utf-8", xml_declaration=True)
    return data


def write(report: Report, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    md, xml = directory / "qa-report.md", directory / "qa-junit.xml"
    md.write_text(markdown(report))
    xml.write_bytes(junit(report))
    for r in report.results:
        if r.outcome is Outcome.FAILED:
            (directory / f"bug-item{r.item.number:02d}.md").write_text(bug_report(r, report) + "\n")
    return md, xml


def now() -> datetime:
    return datetime.now(UTC)
