"""Every CI values file: lint is clean, every manifest is valid Kubernetes, the render is golden.

Set ``UPDATE_GOLDEN=1`` to rewrite ``charts/trackai/snapshots/<values>.yaml`` after an intended
change, then review the diff like code.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate

SCHEMA_DIR = Path(__file__).parent / "schemas"
#: Custom resources kubernetes-validate knows nothing about, validated against our own schemas.
CRD_SCHEMAS = {
    "ExternalSecret": "externalsecret.json",
    "PodMonitor": "podmonitor.json",
    "PrometheusRule": "prometheusrule.json",
    "AlertmanagerConfig": "alertmanagerconfig.json",
}


@cache
def _crd_validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / CRD_SCHEMAS[kind]).read_text())
    return jsonschema.Draft202012Validator(schema)


def test_lint_reports_no_errors(
    ci_values_file: Path, chart_dir: Path, values_of: Any, kube_version: str
) -> None:
    report = helm.lint(
        chart_dir, values=values_of(ci_values_file), strict=True, kube_version=f"v{kube_version}"
    )

    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == []
    assert problems == []


def test_every_manifest_is_valid_for_kubernetes(ci_render: Any, kube_version: str) -> None:
    failures: list[str] = []
    for obj in ci_render.objects:
        label = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in CRD_SCHEMAS:
            errors = [e.message for e in _crd_validator(obj["kind"]).iter_errors(obj)]
            failures.extend(f"{label}: {message}" for message in errors)
            continue
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{label}: {exc.message} at {list(exc.absolute_path)}")

    assert failures == []
    assert len(ci_render.objects) > 10


def test_render_matches_golden(ci_render: Any, snapshot_dir: Path, chart_dir: Path) -> None:
    golden = snapshot_dir / f"{ci_render.name}.yaml"
    actual = ci_render.golden_text()
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual)
    assert golden.exists(), f"no golden render {golden}; run with UPDATE_GOLDEN=1"
    assert actual == golden.read_text(), (
        f"render differs from {golden.relative_to(chart_dir.parents[1])}; if intended, "
        "regenerate with UPDATE_GOLDEN=1 and review the diff"
    )


def test_no_golden_render_is_orphaned(chart_dir: Path, snapshot_dir: Path) -> None:
    expected = {p.stem for p in (chart_dir / "ci").glob("*.yaml")}
    present = {p.stem for p in snapshot_dir.glob("*.yaml")}
    assert present == expected


def test_every_object_is_labelled_for_this_release(ci_render: Any) -> None:
    for obj in ci_render.objects:
        labels: dict[str, Any] = obj["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/instance") == "trackai", obj["metadata"]["name"]
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", obj["metadata"]["name"]
