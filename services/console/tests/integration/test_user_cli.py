"""`trackai user create|invite|list|disable|reset-password` as an operator runs them, against the
console's real UserAdminService and PostgreSQL."""

from __future__ import annotations

import json
import uuid

import pytest

from .conftest import PUBLIC_URL, Console, run_cli, sign_in

pytestmark = pytest.mark.integration


async def test_user_commands_manage_accounts_end_to_end(console: Console) -> None:
    port = console.grpc_port
    tenant = str(uuid.uuid4())
    code, out, err = await run_cli(
        port, "user", "create", "--email", "Op@TrackAI.dev", "--role", "operator",
        "--password-stdin", stdin="senha-do-operador\n",
    )  # fmt: skip
    assert code == 0, err
    assert "operator" in out and "active" in out and "trackai.dev" not in out

    code, out, err = await run_cli(
        port, "user", "invite", "--email", "dona@loja.com.br", "--role", "seller",
        "--tenant", tenant,
    )  # fmt: skip
    assert code == 0, err
    link = out.strip().splitlines()[-1]
    assert link.startswith(f"{PUBLIC_URL}/senha?token=")
    token = link.split("token=", 1)[1]
    await console.accounts.choose_password(token, "senha-da-dona-1")

    code, out, err = await run_cli(port, "user", "list", "--json")
    users = json.loads(out)
    assert [(u["role"], u.get("tenant_id", "")) for u in users] == [
        ("USER_ROLE_OPERATOR", ""),
        ("USER_ROLE_SELLER", tenant),
    ]
    assert "loja.com.br" not in out
    code, out, err = await run_cli(port, "user", "list", "--tenant", tenant)
    assert out.startswith("1 user(s)") and f"tenant={tenant}" in out

    code, out, err = await run_cli(port, "user", "reset-password", "dona@loja.com.br")
    assert code == 0 and f"{PUBLIC_URL}/senha?token=" in out

    code, out, err = await run_cli(port, "user", "disable", "dona@loja.com.br")
    assert code == 0 and "disabled" in out
    async with console.client() as client:
        refused = await sign_in(client, "dona@loja.com.br", "senha-da-dona-1")
    assert refused.status_code == 400


async def test_user_commands_refuse_bad_input_with_clear_errors(console: Console) -> None:
    port = console.grpc_port
    code, _, err = await run_cli(
        port, "user", "invite", "--email", "a@loja.com.br", "--role", "seller"
    )
    assert code == 2 and "a seller needs --tenant" in err
    code, _, err = await run_cli(
        port, "user", "invite", "--email", "a@loja.com.br", "--role", "operator",
        "--tenant", str(uuid.uuid4()),
    )  # fmt: skip
    assert code == 2 and "drop --tenant" in err
    code, _, err = await run_cli(
        port, "user", "create", "--email", "a@loja.com.br", "--role", "operator",
        "--password-stdin", stdin="curta\n",
    )  # fmt: skip
    assert code == 1 and "pelo menos 10 caracteres" in err
    code, _, err = await run_cli(
        port, "user", "invite", "--email", "sem-arroba", "--role", "operator"
    )
    assert code == 1 and "e-mail válido" in err
    await run_cli(port, "user", "invite", "--email", "a@loja.com.br", "--role", "operator")
    code, _, err = await run_cli(
        port, "user", "invite", "--email", "A@Loja.com.br", "--role", "operator"
    )
    assert code == 1 and "ALREADY_EXISTS" in err
    code, _, err = await run_cli(port, "user", "disable", "ninguem@loja.com.br")
    assert code == 1 and "NOT_FOUND" in err
