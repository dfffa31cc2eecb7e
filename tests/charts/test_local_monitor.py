"""`make monitor` (scripts/monitor.py): the local Prometheus and Alertmanager get the same alarms
as the chart's PrometheusRule (no drift between the two renders of monitoring/alarms.yaml), valid
configurations (``promtool check config``, ``amtool check-config``), and the real servers from
Debian's packages start on them with every rule loaded and the inhibitions in force."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from trackai_testing.plugin import require_tool
from trackai_testing.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
HINT = "apt-get install prometheus prometheus-alertmanager (`make test` installs them)"


def _monitor() -> ModuleType:
    spec = importlib.util.spec_from_file_location("monitor", ROOT / "scripts" / "monitor.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["monitor"] = module
    spec.loader.exec_module(module)
    return module


monitor = _monitor()


def test_local_rules_are_the_charts_rules(by_name: Any) -> None:
    (rule,) = by_name("production-values").of_kind("PrometheusRule")
    base = by_name("production-values").effective["monitoring"]["runbookBaseUrl"]
    assert monitor.rule_groups(monitor.catalogue(), base) == rule["spec"]["groups"]


def test_rendered_configurations_are_valid(tmp_path: Path) -> None:
    out = monitor.render(tmp_path)
    promtool = require_tool("promtool", HINT)
    amtool = require_tool("amtool", HINT)
    checked = subprocess.run(
        [promtool, "check", "config", str(out / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 12 rules found" in checked.stdout
    checked = subprocess.run(
        [amtool, "check-config", str(out / "alertmanager.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "4 inhibit rules" in checked.stdout


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Prometheus and Alertmanager from Debian's packages on free loopback ports."""
    require_tool("prometheus", HINT)
    require_tool("prometheus-alertmanager", HINT)
    prometheus_port, alertmanager_port = free_port(), free_port()
    out = monitor.render(tmp_path, alertmanager_port)
    procs = [
        subprocess.Popen(argv, cwd=out, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        for argv in monitor.servers(out, prometheus_port, alertmanager_port)
    ]
    urls = (f"http://127.0.0.1:{prometheus_port}", f"http://127.0.0.1:{alertmanager_port}")
    try:
        deadline = time.monotonic() + 60
        pending = list(urls)
        while pending and time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), "a server exited at start"
            for url in list(pending):
                try:
                    if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                        pending.remove(url)
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        assert not pending, f"not ready: {pending}"
        yield urls
    finally:
        monitor.terminate(procs)


def test_prometheus_and_alertmanager_run_with_every_alarm(running: tuple[str, str]) -> None:
    prometheus, alertmanager = running
    groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    alarms = {alarm["alert"] for alarm in monitor.catalogue()["alarms"]}
    assert {rule["name"] for rule in rules} == alarms
    assert all(rule["health"] in ("ok", "unknown") for rule in rules), rules
    status = httpx.get(f"{alertmanager}/api/v2/status", timeout=5).json()
    assert "TrackaiMetaOutage" in status["config"]["original"]
    assert "inhibit_rules" in status["config"]["original"]
    # Prometheus sends its alerts to that Alertmanager (once its discovery has run).
    deadline = time.monotonic() + 30
    active: list[dict[str, str]] = []
    while not active and time.monotonic() < deadline:
        answer = httpx.get(f"{prometheus}/api/v1/alertmanagers", timeout=5).json()
        active = answer["data"]["activeAlertmanagers"]
        time.sleep(0.2)
    assert [a["url"] for a in active] == [f"{alertmanager}/api/v2/alerts"]
