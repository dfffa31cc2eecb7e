"""The `trackai` operator command against a running provisioner process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.e2e.conftest import TOKEN
from trackai_kit.migrations import grant_service_role
from trackai_testing.plugin import run_sync
from trackai_testing.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
TRACKAI = shutil.which("trackai", path=str(Path(sys.executable).parent)) or "trackai"


def _cli(addr: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROVISIONER_GRPC_TARGET": addr, "GRPC_CLIENT_TOKEN": TOKEN}
    return subprocess.run(
        [TRACKAI, *args], env=env, capture_output=True, text=True, timeout=60, input=stdin or ""
    )


@pytest.fixture
def provisioner_addr(stack) -> str:
    proc = stack.start("provisioner")
    stack.wait_ready(proc)
    return f"127.0.0.1:{proc.grpc_port}"


def test_operator_registers_a_tenant_with_credentials(
    provisioner_addr: str, tmp_path: Path
) -> None:
    created = _cli(
        provisioner_addr,
        "tenant",
        "create",
        "--name",
        "Loja da Ana",
        "--slug",
        "loja-ana",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    tenant = json.loads(created.stdout)
    assert tenant["slug"] == "loja-ana" and len(tenant["id"]) == 36

    gw = _cli(
        provisioner_addr,
        "tenant",
        "set-gateway",
        tenant["id"],
        "--gateway",
        "kiwify",
        "--secret-file",
        "-",
        stdin="9ch0bpzogu9-secret\n",  # secrets come from stdin or a file, never argv (`ps`)
    )
    assert gw.returncode == 0, gw.stderr
    assert "9ch0bpzogu9" not in gw.stdout + gw.stderr  # the secret is never echoed
    assert "warning" not in gw.stderr
    token_file = tmp_path / "meta-token"
    token_file.write_text("EAAB-sandbox-token\n")
    meta = _cli(
        provisioner_addr,
        "tenant",
        "set-meta",
        "loja-ana",
        "--pixel-id",
        "1234567890",
        "--access-token-file",
        str(token_file),
        "--test-event-code",
        "TEST123",
    )
    assert meta.returncode == 0, meta.stderr

    listed = _cli(provisioner_addr, "tenant", "list", "--json")
    [row] = json.loads(listed.stdout)
    assert row["id"] == tenant["id"]
    assert row["configured_gateways"] == ["kiwify"] and row["meta_configured"] is True


def test_bad_arguments_and_refusals_exit_non_zero_with_a_message(provisioner_addr: str) -> None:
    missing = _cli(provisioner_addr, "tenant", "create", "--name", "x")
    assert missing.returncode == 2 and "--slug" in missing.stderr
    bad_slug = _cli(provisioner_addr, "tenant", "create", "--name", "X", "--slug", "Bad Slug")
    assert bad_slug.returncode == 1 and "slug" in bad_slug.stderr
    unknown = _cli(
        provisioner_addr,
        "tenant",
        "set-gateway",
        "nobody",
        "--gateway",
        "kiwify",
        "--secret",
        "abcdefgh1",
    )
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
    # The old flag still works, with a warning: the value is visible in `ps`.
    assert "warning: --secret puts the secret on the command line" in unknown.stderr
    both = _cli(
        provisioner_addr, "tenant", "set-gateway", "nobody", "--gateway", "kiwify",
        "--secret-file", "-", "--signing-secret-file", "-",
    )  # fmt: skip
    assert both.returncode == 2 and "only one secret" in both.stderr
    unreadable = _cli(
        provisioner_addr, "tenant", "set-gateway", "nobody", "--gateway", "kiwify",
        "--secret-file", "/nonexistent/secret",
    )  # fmt: skip
    assert unreadable.returncode == 2 and "cannot read --secret-file" in unreadable.stderr
    gateway = _cli(provisioner_addr, "tenant", "create", "--name", "Y", "--slug", "y")
    assert gateway.returncode == 0
    wrong_gw = _cli(
        provisioner_addr,
        "tenant",
        "set-gateway",
        "y",
        "--gateway",
        "paypal",
        "--secret",
        "abcdefgh1",
    )
    assert wrong_gw.returncode == 1 and "supported" in wrong_gw.stderr


def test_unreachable_provisioner_says_what_to_do() -> None:
    result = _cli(f"127.0.0.1:{free_port()}", "tenant", "list")
    assert result.returncode == 3
    assert "cannot reach the provisioner" in result.stderr


def test_the_provisioner_runs_as_its_own_database_role(stack, database_url: str) -> None:  # type: ignore[no-untyped-def]
    """The role the chart and `make run` give the provisioner is enough to serve: a tenant, a
    funnel and a credential are written (tables, sequences, the outbox trigger) through it."""
    role = f"trackai_e2e_{uuid.uuid4().hex[:10]}_provisioner"
    grant_service_role("provisioner", database_url, role, create_with_password=role)
    try:
        url = make_url(database_url).set(username=role, password=role)
        proc = stack.start("provisioner", DATABASE_URL=url.render_as_string(hide_password=False))
        stack.wait_ready(proc)
        addr = f"127.0.0.1:{proc.grpc_port}"
        created = _cli(addr, "tenant", "create", "--name", "Loja", "--slug", "loja-role", "--json")
        assert created.returncode == 0, created.stderr + proc.logs()
        tenant = json.loads(created.stdout)["id"]
        gateway = _cli(
            addr, "tenant", "set-gateway", tenant, "--gateway", "kiwify", "--secret", "x" * 16
        )
        assert gateway.returncode == 0, gateway.stderr + proc.logs()
        funnel = _cli(addr, "funnel", "create", tenant, "--name", "Curso", "--slug", "curso")
        assert funnel.returncode == 0, funnel.stderr + proc.logs()
    finally:
        stack.stop_all()
        run_sync(_admin(database_url, f"DROP OWNED BY {role}", f"DROP ROLE {role}"))


async def _admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()
