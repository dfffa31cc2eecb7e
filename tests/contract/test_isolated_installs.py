"""Each service installs and imports with only its own declared dependencies.

This is the install step of the Dockerfile (`uv sync --frozen --no-dev --package trackai-<svc>`),
run into a private environment: a service that imports something it does not declare (a
"phantom" dependency the shared workspace venv happens to have) fails here, not in production.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("ingestion", "matcher", "dispatcher", "provisioner", "agent", "console")
#: The operator's command too: it ships in the provisioner's image, where `helm test` runs the
#: QA gate (`trackai qa`) from it.
PACKAGES = (*SERVICES, "cli")

IMPORT_EVERY_MODULE = """
import importlib, pkgutil, sys
package = importlib.import_module(sys.argv[1])
failed = []
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    if info.name.endswith("__main__"):
        continue
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        failed.append(f"{info.name}: {exc!r}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def _uv() -> str:
    found = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    if not Path(found).exists():
        pytest.fail("uv not found: run `make env` first")
    return found


@pytest.mark.slow
@pytest.mark.parametrize("service", PACKAGES)
def test_service_imports_with_only_its_declared_dependencies(service: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv"),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_PYTHON": "python3.11",
    }
    sync = subprocess.run(
        [_uv(), "sync", "--frozen", "--no-dev", "--package", f"trackai-{service}", "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert sync.returncode == 0, sync.stderr
    python = tmp_path / "venv" / "bin" / "python"
    result = subprocess.run(
        [str(python), "-c", IMPORT_EVERY_MODULE, f"trackai_{service}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"modules that need undeclared packages:\n{result.stdout}{result.stderr}"
    )
    # Dev and test tooling must not leak into a service image.
    listed = subprocess.run(
        [_uv(), "pip", "list", "--python", str(python)], capture_output=True, text=True, timeout=60
    ).stdout
    for tool in ("pytest", "ruff", "mypy", "testcontainers"):
        assert f"\n{tool} " not in listed, f"{tool} installed in the {service} image"
