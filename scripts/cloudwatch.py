"""`make cloudwatch`: the alarms as AWS CloudFormation (CloudWatch alarms, SNS topics and the
CloudWatch agent's Prometheus scrape configuration), rendered from the same thresholds file as
the chart's PrometheusRule.

``charts/trackai/monitoring/alarms.yaml`` holds each alarm's threshold, ``for:`` and severity;
``charts/trackai/monitoring/cloudwatch.yaml`` says which CloudWatch metrics each one reads. The
output is ``deploy/cloudwatch/trackai-alarms.yaml``; ``--check`` fails when the committed file
differs from a fresh render (tests/contract/test_cloudwatch.py runs it, and cfn-lint).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "charts" / "trackai" / "monitoring"
ALARMS = MONITORING / "alarms.yaml"
MAPPING = MONITORING / "cloudwatch.yaml"
OUT = ROOT / "deploy" / "cloudwatch" / "trackai-alarms.yaml"
_DURATION = re.compile(r"^(\d+)([smh])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600}


def seconds(duration: str) -> int:
    """A Prometheus ``for:`` duration (``5m``, ``1h``) in seconds."""
    found = _DURATION.match(duration)
    if found is None:
        raise ValueError(f"unsupported duration {duration!r}")
    return int(found.group(1)) * _SECONDS[found.group(2)]


def _logical_id(alarm_id: str) -> str:
    return "".join(part.capitalize() for part in alarm_id.split("-")) + "Alarm"


def _topic_id(severity: str) -> str:
    return f"{severity.capitalize()}Topic"


def cloudwatch_threshold(alarm: dict[str, Any], mapping: dict[str, Any]) -> float:
    """The threshold the CloudWatch alarm compares with: the alarm's own, or (p95 read as a
    share of slow requests) the share, the alarm's threshold being the cutoff."""
    special = mapping.get("threshold")
    if isinstance(special, dict) and "share_above_cutoff" in special:
        return float(special["share_above_cutoff"])
    return float(alarm["threshold"])


def _metric(
    metric_id: str, spec: dict[str, Any], period: int, namespace: str, jobs: dict[str, str]
) -> dict[str, Any]:
    job = jobs[spec.get("job", "services")]
    dimensions = [{"Name": "job", "Value": job}] + [
        {"Name": name, "Value": str(value)}
        for name, value in sorted((spec.get("dimensions") or {}).items())
    ]
    return {
        "Id": metric_id,
        "MetricStat": {
            "Metric": {
                "Namespace": namespace,
                "MetricName": spec["name"],
                "Dimensions": dimensions,
            },
            "Period": period,
            "Stat": spec["stat"],
        },
        "ReturnData": False,
    }


def alarm_resource(
    alarm: dict[str, Any], mapping: dict[str, Any], namespace: str, jobs: dict[str, str]
) -> dict[str, Any]:
    period = int(mapping["period"])
    evaluations = max(1, seconds(alarm["for"]) // period)
    metrics = [
        _metric(metric_id, spec, period, namespace, jobs)
        for metric_id, spec in mapping["metrics"].items()
    ]
    expression = mapping.get("expression")
    if expression is None:
        if len(metrics) != 1:
            raise ValueError(f"{alarm['id']}: several metrics need an expression")
        metrics[0]["ReturnData"] = True
    else:
        metrics.append({"Id": "value", "Expression": expression, "ReturnData": True})
    topic = _topic_id(alarm["severity"])
    threshold = str(alarm["threshold"])
    description = " ".join(str(alarm["description"]).split()).replace("$THRESHOLD", threshold)
    if mapping.get("note"):
        description += f" ({mapping['note']})"
    runbook = f"docs/runbooks/{alarm['id']}.md"
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": {"Fn::Sub": f"${{AWS::StackName}}-{alarm['alert']}"},
            "AlarmDescription": f"[{alarm['severity']}] {description} Runbook: {runbook}"[:1024],
            "Metrics": metrics,
            "ComparisonOperator": mapping["comparison"],
            "Threshold": cloudwatch_threshold(alarm, mapping),
            "EvaluationPeriods": evaluations,
            "DatapointsToAlarm": evaluations,
            "TreatMissingData": mapping["missing"],
            "AlarmActions": [{"Ref": topic}],
            "OKActions": [{"Ref": topic}],
        },
    }


def agent_configuration(
    mappings: dict[str, Any], namespace: str, jobs: dict[str, str]
) -> dict[str, Any]:
    """The CloudWatch agent's ``logs.metrics_collected.prometheus`` section: which scraped
    metrics become CloudWatch metrics, under which dimension sets (the ones the alarms read)."""
    wanted: dict[tuple[str, str], set[tuple[str, ...]]] = {}
    for mapping in mappings.values():
        for spec in (mapping.get("metrics") or {}).values():
            job = jobs[spec.get("job", "services")]
            dims = ("job", *sorted((spec.get("dimensions") or {}).keys()))
            wanted.setdefault((job, spec["name"]), set()).add(dims)
    declarations = [
        {
            "source_labels": ["job"],
            "label_matcher": f"^{job}$",
            "dimensions": [list(d) for d in sorted(dims)],
            "metric_selectors": [f"^{name}$"],
        }
        for (job, name), dims in sorted(wanted.items())
    ]
    return {
        "prometheus": {
            "prometheus_config_path": "/etc/prometheusconfig/prometheus.yaml",
            "emf_processor": {
                "metric_namespace": namespace,
                "metric_declaration": declarations,
            },
        }
    }


def scrape_configuration(jobs: dict[str, str]) -> dict[str, Any]:
    """The Prometheus scrape configuration the agent reads: every Track AI pod's metrics port
    (the chart's pods, by their ``part-of`` label) and RabbitMQ's plugin (per-queue series)."""
    return {
        "global": {"scrape_interval": "60s", "scrape_timeout": "10s"},
        "scrape_configs": [
            {
                "job_name": jobs["services"],
                "kubernetes_sd_configs": [{"role": "pod"}],
                "relabel_configs": [
                    {
                        "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_part_of"],
                        "regex": "trackai",
                        "action": "keep",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                        "regex": "http",
                        "action": "keep",
                    },
                ],
            },
            {
                "job_name": jobs["rabbitmq"],
                "metrics_path": "/metrics/per-object",
                "static_configs": [{"targets": ["${RabbitMqPrometheusTarget}"]}],
            },
        ],
    }


def template() -> dict[str, Any]:
    alarms = yaml.safe_load(ALARMS.read_text())
    spec = yaml.safe_load(MAPPING.read_text())
    namespace, jobs, mappings = spec["namespace"], spec["jobs"], spec["alarms"]
    ids = [a["id"] for a in alarms["alarms"]]
    if set(ids) != set(mappings):
        raise ValueError(
            f"cloudwatch.yaml must map every alarm: {sorted(set(ids) ^ set(mappings))}"
        )
    severities = sorted({a["severity"] for a in alarms["alarms"]})
    resources: dict[str, Any] = {
        _topic_id(severity): {
            "Type": "AWS::SNS::Topic",
            "Properties": {
                "TopicName": {"Fn::Sub": f"${{AWS::StackName}}-{severity}"},
                "KmsMasterKeyId": "alias/aws/sns",
            },
        }
        for severity in severities
    }
    for alarm in alarms["alarms"]:
        mapping = mappings[alarm["id"]]
        if mapping.get("cloudwatch") is False:
            continue
        resources[_logical_id(alarm["id"])] = alarm_resource(alarm, mapping, namespace, jobs)
    resources["AgentPrometheusScrapeConfig"] = {
        "Type": "AWS::SSM::Parameter",
        "Properties": {
            "Name": {"Fn::Sub": "/${AWS::StackName}/cloudwatch-agent/prometheus.yaml"},
            "Type": "String",
            "Value": {"Fn::Sub": yaml.safe_dump(scrape_configuration(jobs), sort_keys=False)},
        },
    }
    resources["AgentConfig"] = {
        "Type": "AWS::SSM::Parameter",
        "Properties": {
            "Name": {"Fn::Sub": "/${AWS::StackName}/cloudwatch-agent/config.json"},
            "Type": "String",
            "Value": json.dumps(
                {"logs": {"metrics_collected": agent_configuration(mappings, namespace, jobs)}},
                sort_keys=True,
            ),
        },
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "Track AI alarms on CloudWatch, rendered by scripts/cloudwatch.py from "
        "charts/trackai/monitoring/alarms.yaml (do not edit by hand)",
        "Parameters": {
            "RabbitMqPrometheusTarget": {
                "Type": "String",
                "Description": "host:port of RabbitMQ's Prometheus plugin (rabbitmq_prometheus)",
                "Default": "rabbitmq:15692",
            }
        },
        "Resources": resources,
        "Outputs": {
            f"{_topic_id(severity)}Arn": {"Value": {"Ref": _topic_id(severity)}}
            for severity in severities
        },
    }


class _NoAliases(yaml.SafeDumper):
    """CloudFormation refuses YAML aliases: every repeated value is written out again."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render() -> str:
    header = "# Generated by `make cloudwatch` (scripts/cloudwatch.py). Do not edit.\n"
    return header + yaml.dump(template(), Dumper=_NoAliases, sort_keys=False, width=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the file is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            sys.stderr.write(f"{OUT.relative_to(ROOT)} is stale: run `make cloudwatch`\n")
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
