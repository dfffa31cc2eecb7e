"""`make monitor`: a real Prometheus and Alertmanager (Debian's packages) against the local stack.

Renders the alarms of ``charts/trackai/monitoring/alarms.yaml`` (the same file the Helm chart
renders into its PrometheusRule) into ``.run/monitor/``, with a scrape configuration for every
process of ``make run`` and RabbitMQ's Prometheus plugin, then runs both servers on the loopback
until Ctrl-C. ``render`` only writes the files; ``check`` writes them and validates them with
``promtool check config`` and ``amtool check-config``. The demo: docs/runbooks/local-stack.md.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from devstack import WORKER_PROCESSES

from trackai_kit.settings import HTTP_PORTS

ROOT = Path(__file__).resolve().parent.parent
ALARMS = ROOT / "charts" / "trackai" / "monitoring" / "alarms.yaml"
OUT = ROOT / ".run" / "monitor"
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
#: What `make run` listens on: every `serve` process, then the workers.
TARGETS = {
    **HTTP_PORTS,
    **{f"{svc}-{command}": port for svc, (command, port) in WORKER_PROCESSES.items()},
}
RABBITMQ_PROMETHEUS = "127.0.0.1:15692"
PACKAGES = {"prometheus": "prometheus", "prometheus-alertmanager": "prometheus-alertmanager"}


def catalogue() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(ALARMS.read_text())
    return loaded


def rule_groups(alarms: dict[str, Any], runbook_base: str) -> list[dict[str, Any]]:
    """The alerting rules, as the chart's PrometheusRule renders them (tested for drift)."""
    rules = []
    for alarm in alarms["alarms"]:
        threshold = _number(alarm["threshold"])
        rules.append(
            {
                "alert": alarm["alert"],
                "expr": alarm["expr"].replace("$THRESHOLD", threshold),
                "for": alarm["for"],
                "labels": {"severity": alarm["severity"], "team": "trackai"},
                "annotations": {
                    "summary": alarm["summary"].replace("$THRESHOLD", threshold),
                    "description": alarm["description"].replace("$THRESHOLD", threshold),
                    "runbook_url": f"{runbook_base.rstrip('/')}/{alarm['id']}.md",
                },
            }
        )
    return [{"name": alarms["group"], "interval": alarms["interval"], "rules": rules}]


def _number(value: float) -> str:
    """As Helm's ``toString`` prints a YAML number (5, 0.5)."""
    return f"{value:g}"


def alertmanager_config(alarms: dict[str, Any]) -> dict[str, Any]:
    """Routing and inhibitions as the chart's AlertmanagerConfig has them; one local receiver."""
    inhibit = [
        {
            "source_matchers": [f'alertname="{rule["source"]}"'],
            "target_matchers": [f'alertname=~"{"|".join(rule["targets"])}"'],
            **({"equal": rule["equal"]} if rule["equal"] else {}),
        }
        for rule in alarms["inhibitions"]
    ]
    inhibit.append(
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["alertname", "tenant_id", "queue", "schema"],
        }
    )
    return {
        "route": {
            "receiver": "local",
            "group_by": ["alertname", "tenant_id", "queue", "schema"],
            "group_wait": "10s",
            "group_interval": "1m",
            "repeat_interval": "1h",
        },
        # Locally the alerts are read on Alertmanager's page; production routes them to people.
        "receivers": [{"name": "local"}],
        "inhibit_rules": inhibit,
    }


def prometheus_config(alertmanager_port: int = ALERTMANAGER_PORT) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "rule_files": ["rules.yaml"],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        },
        "scrape_configs": [
            {
                "job_name": "trackai",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{port}"], "labels": {"process": name}}
                    for name, port in TARGETS.items()
                ],
            },
            {
                "job_name": "rabbitmq",
                "metrics_path": "/metrics/per-object",
                "static_configs": [{"targets": [RABBITMQ_PROMETHEUS]}],
            },
        ],
    }


def render(out: Path = OUT, alertmanager_port: int = ALERTMANAGER_PORT) -> Path:
    """Write prometheus.yml, rules.yaml and alertmanager.yml into ``out``; returns ``out``."""
    alarms = catalogue()
    out.mkdir(parents=True, exist_ok=True)
    runbooks = (ROOT / "docs" / "runbooks").as_uri()
    rules = {"groups": rule_groups(copy.deepcopy(alarms), runbooks)}
    (out / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    (out / "prometheus.yml").write_text(
        yaml.safe_dump(prometheus_config(alertmanager_port), sort_keys=False)
    )
    (out / "alertmanager.yml").write_text(
        yaml.safe_dump(alertmanager_config(alarms), sort_keys=False)
    )
    return out


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        sys.exit(
            f"{name} is missing: `sudo apt-get install --no-install-recommends "
            f"{' '.join(PACKAGES.values())}` (Debian's packages), then `make monitor` again."
        )
    return found


def check(out: Path = OUT) -> None:
    render(out)
    for argv in (
        [_tool("promtool"), "check", "config", str(out / "prometheus.yml")],
        [_tool("amtool"), "check-config", str(out / "alertmanager.yml")],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"{' '.join(argv[:3])} failed:\n{done.stdout}{done.stderr}")
    sys.stdout.write(f"monitoring configuration valid ({out})\n")


def servers(out: Path, prometheus_port: int, alertmanager_port: int) -> list[list[str]]:
    """The command lines of Alertmanager and Prometheus (loopback only, state under ``out``)."""
    return [
        [
            _tool("prometheus-alertmanager"),
            f"--config.file={out / 'alertmanager.yml'}",
            f"--storage.path={out / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{alertmanager_port}",
            "--cluster.listen-address=",
        ],
        [
            _tool("prometheus"),
            f"--config.file={out / 'prometheus.yml'}",
            f"--storage.tsdb.path={out / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--storage.tsdb.retention.time=1d",
        ],
    ]


def run() -> None:
    out = render()
    procs = [
        subprocess.Popen(argv, cwd=out, start_new_session=True)
        for argv in servers(out, PROMETHEUS_PORT, ALERTMANAGER_PORT)
    ]
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    ready = {
        f"http://127.0.0.1:{PROMETHEUS_PORT}/-/ready": False,
        f"http://127.0.0.1:{ALERTMANAGER_PORT}/-/ready": False,
    }
    deadline = time.monotonic() + 30
    while not stop and not all(ready.values()) and time.monotonic() < deadline:
        for url in [u for u, ok in ready.items() if not ok]:
            with contextlib.suppress(httpx.HTTPError):
                ready[url] = httpx.get(url, timeout=1).status_code == 200
        time.sleep(0.3)
    if all(ready.values()):
        sys.stdout.write(
            f"\nPrometheus   http://127.0.0.1:{PROMETHEUS_PORT}/alerts (rules: {ALARMS.name})\n"
            f"Alertmanager http://127.0.0.1:{ALERTMANAGER_PORT}/\n"
            "Scraping every process of `make run` and RabbitMQ's plugin; Ctrl-C stops both.\n"
        )
    while not stop and all(p.poll() is None for p in procs):
        time.sleep(0.5)
    terminate(procs)


def terminate(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each server, then wait (SIGKILL after 15 s)."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["run", "render", "check"], nargs="?", default="run")
    args = parser.parse_args()
    if args.command == "run":
        run()
    elif args.command == "check":
        check()
    else:
        render()


if __name__ == "__main__":
    main()
