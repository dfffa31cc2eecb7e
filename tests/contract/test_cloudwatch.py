"""The alarms as CloudFormation (deploy/cloudwatch/trackai-alarms.yaml) say what the Prometheus
rules say: rendered from the same thresholds file (charts/trackai/monitoring/alarms.yaml), the
committed template is the current render, each CloudWatch alarm compares with its alarm's
threshold over its ``for:`` period, and cfn-lint (AWS's CloudFormation linter) passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import cloudwatch  # noqa: E402
import monitor  # noqa: E402

from trackai_dispatcher.service_layer.metrics import META_SLOW_S  # noqa: E402

TEMPLATE = ROOT / "deploy" / "cloudwatch" / "trackai-alarms.yaml"


class _CfnLoader(yaml.SafeLoader):
    """Reads the template's long-form intrinsic functions (the renderer writes no short tags)."""


def _template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)
    return loaded


def _alarms() -> list[dict[str, Any]]:
    alarms: list[dict[str, Any]] = monitor.catalogue()["alarms"]
    return alarms


def test_the_committed_template_is_the_render_of_the_thresholds_file() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/cloudwatch.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_cfn_lint_passes() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    done = subprocess.run(
        [str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_cloudwatch_alarm_has_the_prometheus_rules_threshold_and_period() -> None:
    resources = _template()["Resources"]
    by_name = {
        r["Properties"]["AlarmName"]["Fn::Sub"].removeprefix("${AWS::StackName}-"): r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    (group,) = monitor.rule_groups(monitor.catalogue(), "")
    rules = {rule["alert"]: rule for rule in group["rules"]}
    mapping = yaml.safe_load(cloudwatch.MAPPING.read_text())["alarms"]
    rendered = 0
    for alarm in _alarms():
        threshold = float(alarm["threshold"])
        # The Prometheus rule compares with this threshold...
        assert f"{threshold:g}" in rules[alarm["alert"]]["expr"], alarm["id"]
        if mapping[alarm["id"]].get("cloudwatch") is False:
            continue
        rendered += 1
        cw = by_name[alarm["alert"]]
        period = cw["Metrics"][0]["MetricStat"]["Period"]
        # ...and so does the CloudWatch alarm, over the same `for:`.
        assert cw["EvaluationPeriods"] * period == cloudwatch.seconds(alarm["for"]), alarm["id"]
        assert f"[{alarm['severity']}]" in cw["AlarmDescription"]
        if alarm["id"] == "dispatch-latency":
            # p95 > T  <=>  more than 5 % of the POSTs slower than T: T is the slow counter's cutoff.
            assert threshold == META_SLOW_S
            assert cw["Threshold"] == 0.05
        else:
            assert cw["Threshold"] == threshold, alarm["id"]
    assert rendered == len(by_name) >= 11


def test_a_threshold_changed_in_the_thresholds_file_changes_the_template(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalogue = monitor.catalogue()
    catalogue["alarms"][0]["threshold"] = 7
    changed = tmp_path / "alarms.yaml"
    changed.write_text(yaml.safe_dump(catalogue))
    monkeypatch.setattr(cloudwatch, "ALARMS", changed)
    assert cloudwatch.render() != TEMPLATE.read_text()
    alarm = next(
        r["Properties"]
        for r in cloudwatch.template()["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    )
    assert alarm["Threshold"] == 7
