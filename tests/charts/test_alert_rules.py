"""The alarms as deployed: the PrometheusRule the chart renders from monitoring/alarms.yaml,
checked by Prometheus' own ``promtool`` (Debian's ``prometheus`` package): the rules parse (their
annotation templates included), and ``promtool test rules`` proves each alarm fires on its
condition and stays quiet on the no-noise cases (tests/charts/alerts_test.yaml)."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from trackai_testing.plugin import require_tool

ALARMS = Path(__file__).resolve().parents[2] / "charts/trackai/monitoring/alarms.yaml"
CASES = Path(__file__).parent / "alerts_test.yaml"
DOCS = Path(__file__).resolve().parents[2] / "docs"
HINT = "apt-get install prometheus; `make test` installs it (scripts/devstack.py ensure-tools)"


def _rule_groups(by_name: Any) -> list[dict[str, Any]]:
    (rule,) = by_name("production-values").of_kind("PrometheusRule")
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    promtool = require_tool("promtool", HINT)
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_rendered_rules_pass_promtool_check(by_name: Any, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": _rule_groups(by_name)}))
    done = _promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 12 rules found" in done.stdout, done.stdout


def test_each_alarm_fires_on_its_condition_and_not_on_noise(by_name: Any, tmp_path: Path) -> None:
    groups = copy.deepcopy(_rule_groups(by_name))  # the render is shared by the session
    for group in groups:
        for rule in group["rules"]:
            # promtool compares annotations exactly; their templates are checked above.
            rule.pop("annotations")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    shutil.copy(CASES, tmp_path / "alerts_test.yaml")
    done = _promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # Every alarm has at least one case in which it must fire.
    cases = yaml.safe_load(CASES.read_text())["tests"]
    firing = {
        check["alertname"]
        for case in cases
        for check in case["alert_rule_test"]
        if check.get("exp_alerts")
    }
    assert firing == {rule["alert"] for group in groups for rule in group["rules"]}


def test_every_alarm_has_a_runbook_and_a_threshold_written_once(by_name: Any) -> None:
    catalogue = yaml.safe_load(ALARMS.read_text())
    rendered = {rule["alert"]: rule for rule in _rule_groups(by_name)[0]["rules"]}
    for alarm in catalogue["alarms"]:
        runbook = DOCS / "runbooks" / f"{alarm['id']}.md"
        assert runbook.is_file(), f"{alarm['alert']}: no {runbook}"
        assert alarm["alert"] in runbook.read_text(), f"{runbook} does not name its alarm"
        rule = rendered[alarm["alert"]]
        assert rule["annotations"]["runbook_url"].endswith(f"/docs/runbooks/{alarm['id']}.md")
        # The threshold appears in the rendered expression, and no placeholder is left.
        assert "$THRESHOLD" not in yaml.safe_dump(rule)
        assert "$THRESHOLD" in alarm["expr"], f"{alarm['alert']}: threshold written in the expr"
        compared = re.compile(rf"(?:[<>]=?|==)\s*{re.escape(str(alarm['threshold']))}(?![\d.])")
        assert compared.search(rule["expr"]), rule["expr"]
