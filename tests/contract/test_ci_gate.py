"""CI's judgement of a test run: a suite skipped for a missing tool fails CI, a clean run passes,
and tests under an ``integration`` directory are marked so ``make test-fast`` never runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from trackai_cli.qa import report as rpt
from trackai_cli.qa.checklist import ITEMS

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "scripts/ci_junit_check.py"

PASSING = "def test_passes() -> None:\n    assert 1 + 1 == 2\n"
SKIPPED_FOR_TOOL = (
    "from trackai_testing.plugin import require_tool\n\n"
    "def test_needs_a_tool() -> None:\n"
    "    require_tool('trackai-no-such-tool', 'apt-get install it')\n"
)
SKIPPED_ON_PURPOSE = (
    "import pytest\n\n@pytest.mark.skip(reason='documented, not a tool')\n"
    "def test_skipped() -> None:\n    pass\n"
)


def _run_suite(
    tmp_path: Path, files: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "trackai_testing.plugin",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-c",
            "/dev/null",
            "-q",
            *args,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def _judge(junit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK), str(junit)], capture_output=True, text=True, check=False
    )


def test_a_test_skipped_for_a_missing_tool_fails_ci(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    _run_suite(
        tmp_path, {"test_a.py": PASSING, "test_b.py": SKIPPED_FOR_TOOL}, f"--junitxml={junit}"
    )
    verdict = _judge(junit)
    assert verdict.returncode == 1
    assert "test_needs_a_tool: missing tool: trackai-no-such-tool" in verdict.stderr


def test_a_clean_run_and_a_deliberate_skip_pass_ci(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    _run_suite(
        tmp_path, {"test_a.py": PASSING, "test_c.py": SKIPPED_ON_PURPOSE}, f"--junitxml={junit}"
    )
    verdict = _judge(junit)
    assert verdict.returncode == 0, verdict.stderr
    assert "CI: 1 tests ran" in verdict.stdout


def test_a_run_with_no_test_fails_ci(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    _run_suite(tmp_path, {"test_c.py": SKIPPED_ON_PURPOSE}, f"--junitxml={junit}")
    assert _judge(junit).returncode == 1


def test_tests_under_an_integration_directory_are_left_out_of_the_fast_run(tmp_path: Path) -> None:
    files = {"unit/test_u.py": PASSING, "integration/test_i.py": PASSING.replace("passes", "io")}
    result = _run_suite(tmp_path, files, "-m", "not integration", "-v")
    assert "1 passed, 1 deselected" in result.stdout
    assert "test_i.py::test_io" not in result.stdout


def _qa_junit(tmp_path: Path, outcome: str, evidence: str) -> Path:
    """The QA gate's JUnit for a run where item 5 had ``outcome`` and every other item passed."""
    results = [
        rpt.Result(
            i, rpt.Outcome(outcome) if i.number == 5 else rpt.Outcome.PASSED, evidence=evidence
        )
        for i in ITEMS
    ]
    now = rpt.now()
    _, xml = rpt.write(rpt.Report("http://127.0.0.1:8001", "full", results, now, now), tmp_path)
    return xml


def test_ci_refuses_a_qa_run_that_could_not_load_the_snippets_in_chromium(tmp_path: Path) -> None:
    """`.ci/run` judges the QA gate's JUnit too: an item skipped for lack of Chromium is a refused
    skip (the gate's wording matches CI's), a deliberately left-out item is not."""
    missing = _judge(_qa_junit(tmp_path / "a", "skipped", "missing tool: chromium/Playwright"))
    assert missing.returncode == 1 and "item05" in missing.stderr, missing.stderr
    left_out = _judge(_qa_junit(tmp_path / "b", "skipped", "destructive: left out"))
    assert left_out.returncode == 0 and "CI: 14 tests ran" in left_out.stdout, left_out.stderr
