"""Regenerate the Python code of every contract in proto/ into libs/protos/src/trackai.

`python scripts/gen_protos.py` rewrites the tree (stale files removed); `--check` generates into a
temporary directory and exits 1 listing every file that differs, for CI drift checks.
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUTPUT_DIR = ROOT / "libs" / "protos" / "src" / "trackai"
ROOT_INIT = '"""Generated Track AI contracts."""\n'
SERVICE_DECLARATION = re.compile(r"^service\s+\w+", re.MULTILINE)
PACKAGE_INIT = '"""Generated from proto/{path}; regenerate with `make proto`, never edit."""\n'


def _plugin(name: str) -> Path:
    """Find a protoc plugin installed next to this interpreter (the workspace venv) or on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: run `uv sync --all-packages` (from mypy-protobuf)")
    return Path(found)


def _well_known_types_dir() -> Path:
    """grpcio-tools ships google/protobuf/*.proto; locating it avoids importing untyped code."""
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or spec.origin is None:
        raise SystemExit("grpcio-tools not installed: run `uv sync --all-packages`")
    return Path(spec.origin).parent / "_proto"


def generate(out_root: Path) -> None:
    """Write the generated `trackai` tree (code, stubs, __init__.py, py.typed) under out_root."""
    protos = sorted(p.relative_to(PROTO_DIR).as_posix() for p in PROTO_DIR.rglob("*.proto"))
    if not protos:
        raise SystemExit(f"no .proto files under {PROTO_DIR}")
    out_root.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{_well_known_types_dir()}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *protos,
    ]
    # Relative proto paths keep absolute paths of this machine out of the generated code.
    result = subprocess.run(command, cwd=PROTO_DIR, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"protoc failed:\n{result.stderr}")
    # grpcio-tools writes a *_pb2_grpc module for every file; for message-only files (events)
    # it would hold nothing but a version check, so it is dropped.
    for proto in protos:
        if not SERVICE_DECLARATION.search((PROTO_DIR / proto).read_text()):
            stem = out_root / proto.removesuffix(".proto")
            for suffix in ("_pb2_grpc.py", "_pb2_grpc.pyi"):
                Path(f"{stem}{suffix}").unlink(missing_ok=True)
    package_root = out_root / "trackai"
    (package_root / "__init__.py").write_text(ROOT_INIT)
    (package_root / "py.typed").write_text("")
    for directory in sorted(d for d in package_root.rglob("*") if d.is_dir()):
        relative = directory.relative_to(package_root.parent).as_posix()
        (directory / "__init__.py").write_text(PACKAGE_INIT.format(path=relative))


def _files(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def drift(generated: Path, committed: Path) -> list[str]:
    """Describe every difference between a fresh generation and the committed tree."""
    fresh, current = _files(generated), _files(committed)
    problems = [f"missing: {name}" for name in sorted(fresh - current)]
    problems += [f"stale: {name}" for name in sorted(current - fresh)]
    problems += [
        f"differs: {name}"
        for name in sorted(fresh & current)
        if not filecmp.cmp(generated / name, committed / name, shallow=False)
    ]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="fail (exit 1) when the committed code is not current"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = Path(tmp) / "trackai"
        if args.check:
            problems = drift(fresh, OUTPUT_DIR)
            if problems:
                sys.stderr.write(
                    "generated protobuf code is out of date (run `make proto`):\n  "
                    + "\n  ".join(problems)
                    + "\n"
                )
                return 1
            return 0
        shutil.rmtree(OUTPUT_DIR, ignore_errors=True)
        shutil.copytree(fresh, OUTPUT_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
