"""Fixtures for the Helm chart tests: the loaded chart and one offline render per CI values file.

Rendering goes through ``helm-python-sdk`` (Helm's own Go engine via its C ABI), so what is
tested is what ``helm upgrade`` would send to the cluster.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "trackai"
CI_VALUES_FILES = sorted((CHART_DIR / "ci").glob("*.yaml"))
SNAPSHOT_DIR = CHART_DIR / "snapshots"
RELEASE_NAME = "trackai"
NAMESPACE = "trackai"
#: Kubernetes version the manifests are validated against (kubernetes-validate ships its schemas).
KUBE_VERSION = "1.33.0"
NOTES = f"{CHART_DIR.name}/templates/NOTES.txt"


@dataclass(frozen=True)
class Render:
    """One offline render of the chart: template path -> rendered text, plus parsed objects."""

    name: str
    values: dict[str, Any]
    #: The chart defaults coalesced with ``values``: what the templates actually saw.
    effective: dict[str, Any]
    templates: dict[str, str]
    objects: list[dict[str, Any]] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        matches = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        assert len(matches) == 1, f"expected one {kind} named {name}, found {len(matches)}"
        return matches[0]

    def golden_text(self) -> str:
        """The render as `helm template` would print it: sorted by template, empty ones left out."""
        parts = [
            f"# Source: {path}\n{text.strip()}\n"
            for path, text in sorted(self.templates.items())
            if path != NOTES and text.strip()
        ]
        return "---\n" + "---\n".join(parts)


def load_values(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text()) or {}
    assert isinstance(loaded, dict), f"{path} must hold a mapping"
    return loaded


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` deep-merged onto ``base`` (maps merge, anything else replaces)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def with_required(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` over what production cannot default (ci/default-values.yaml: gRPC caller
    digests, how gRPC is encrypted, the tracking script's URL)."""
    return merged(load_values(CHART_DIR / "ci" / "default-values.yaml"), values)


def render(
    chart: helm.Chart, values: dict[str, Any], name: str = "inline", release: str = RELEASE_NAME
) -> Render:
    templates = chart.render(values=values, name=release, namespace=NAMESPACE, is_install=True)
    objects = [
        obj
        for path, text in sorted(templates.items())
        if path != NOTES
        for obj in yaml.safe_load_all(text)
        if obj
    ]
    return Render(
        name=name,
        values=values,
        effective=chart.merge_values(values),
        templates=templates,
        objects=objects,
    )


@pytest.fixture(scope="session")
def chart_dir() -> Path:
    return CHART_DIR


@pytest.fixture(scope="session")
def snapshot_dir() -> Path:
    return SNAPSHOT_DIR


@pytest.fixture(scope="session")
def kube_version() -> str:
    return KUBE_VERSION


@pytest.fixture(scope="session")
def required() -> Any:
    """:func:`with_required`, as a fixture because test modules cannot import conftest."""
    return with_required


@pytest.fixture(scope="session")
def values_of() -> Any:
    """Loader of a values file, as a fixture because test modules cannot import conftest."""
    return load_values


@pytest.fixture(scope="session")
def render_inline(chart: helm.Chart) -> Any:
    """Render values given in the test over the required ones (not memoised: each test builds
    its own)."""

    def _render(values: dict[str, Any], release: str = RELEASE_NAME) -> Render:
        return render(chart, with_required(values), release=release)

    return _render


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render_values(chart: helm.Chart) -> Any:
    """Render arbitrary values (memoised per values file, since every test reads the same few)."""

    @functools.cache
    def _render_file(path: Path) -> Render:
        return render(chart, load_values(path), name=path.stem)

    return _render_file


@pytest.fixture(scope="session", params=CI_VALUES_FILES, ids=lambda p: p.stem)
def ci_values_file(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


@pytest.fixture(scope="session")
def ci_render(render_values: Any, ci_values_file: Path) -> Render:
    rendered: Render = render_values(ci_values_file)
    return rendered


@pytest.fixture(scope="session")
def by_name(render_values: Any) -> Any:
    """Render of one named CI values file, e.g. ``by_name("production-values")``."""

    def _get(stem: str) -> Render:
        rendered: Render = render_values(CHART_DIR / "ci" / f"{stem}.yaml")
        return rendered

    return _get
