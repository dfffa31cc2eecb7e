"""The release gate (`make qa`, `trackai qa`) proves itself: against a real local stack addressed
by URL (the deployment path), the non-destructive subset passes and touches only its items; with
one fault injected into the stack (Meta refusing the tenant's token), the gate exits non-zero
with a ready-to-file bug report for exactly that item. `make qa` in CI is the healthy full run
(all 15 items)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from trackai_testing.plugin import require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]


def _load_qa_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("qa_script", ROOT / "scripts" / "qa.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["qa_script"] = module
    spec.loader.exec_module(module)
    return module


qa_script = _load_qa_script()


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    require_tool("chromium", "apt-get install chromium; `make test` installs it")
    with qa_script.local_stack(tmp_path_factory.mktemp("qa-logs")) as stack:
        yield stack


def _gate(stack: object, report: Path, *args: str) -> subprocess.CompletedProcess[str]:
    trackai = Path(sys.executable).parent / "trackai"
    return subprocess.run(
        [str(trackai), "qa", "--report-dir", str(report), *args],
        env=stack.env,  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )


def _outcomes(junit: Path) -> dict[int, str]:
    cases = ET.parse(junit).getroot().iter("testcase")
    outcomes = {}
    for case in cases:
        number = int(case.get("name", "")[4:6])
        failed = case.find("failure") is not None
        skipped = case.find("skipped") is not None
        outcomes[number] = "failed" if failed else "skipped" if skipped else "passed"
    return outcomes


def test_non_destructive_subset_passes_and_leaves_the_rest_out(
    local: object, tmp_path: Path
) -> None:
    done = _gate(local, tmp_path, "--non-destructive", "--print-report")
    assert done.returncode == 0, done.stdout + done.stderr
    outcomes = _outcomes(tmp_path / "qa-junit.xml")
    assert {n for n, o in outcomes.items() if o == "passed"} == {1, 7, 8, 10}, outcomes
    assert {n for n, o in outcomes.items() if o == "skipped"} == set(range(1, 16)) - {1, 7, 8, 10}
    report = (tmp_path / "qa-report.md").read_text()
    assert report.startswith("# QA gate report: PASSED")
    assert "destructive: left out of the non-destructive subset" in report
    assert f"junit:  {tmp_path / 'qa-junit.xml'}" in done.stdout
    assert report in done.stdout  # printed too: a `helm test` Pod's log is where it is read


def test_a_fault_in_the_stack_blocks_the_release_with_the_items_bug_report(
    local: object, tmp_path: Path
) -> None:
    meta = local.env["QA_META_SANDBOX_URL"]  # type: ignore[attr-defined]
    # The fault: Meta now says the tenant's token has expired (what a revoked token looks like).
    httpx.post(
        f"{meta}/_sandbox/tokens",
        json={"token": "sandbox-token", "state": "expired", "pixel_ids": ["1234567890"]},
    ).raise_for_status()
    try:
        done = _gate(local, tmp_path, "--items", "1,7,8")
    finally:
        httpx.post(
            f"{meta}/_sandbox/tokens",
            json={"token": "sandbox-token", "state": "valid", "pixel_ids": ["1234567890"]},
        ).raise_for_status()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "QA gate: BLOCKED" in done.stdout
    outcomes = _outcomes(tmp_path / "qa-junit.xml")
    assert outcomes[7] == "failed" and outcomes[1] == outcomes[8] == "passed", outcomes
    assert [p.name for p in tmp_path.glob("bug-*.md")] == ["bug-item07.md"]
    bug = (tmp_path / "bug-item07.md").read_text()
    assert bug.startswith("### [QA] item 7 failed: Meta token valid")
    assert "**Severity:** critical (blocks the release)" in bug
    assert "agent RunCheck validate_meta_token" in bug  # the steps, with the path used
    assert "**Expected:** status ok" in bug
    assert (
        "**Actual:** error:" in bug and "expirou" in bug
    )  # the agent's verdict, as sellers see it
    # The trace the item's calls carried; the agent logs nothing under it for a check, so the
    # excerpt falls back to the services' lines about the run's tenant.
    assert re.search(r"\*\*Trace id:\*\* [0-9a-f]{32}\n", bug), bug
    logs = bug.split("**Logs (excerpt)**", 1)[1]
    assert '"event": "tenant created"' in logs and "provisioner: " in logs, logs
    assert str(tmp_path / "bug-item07.md") in done.stdout
