"""`trackai tenant update` and `trackai funnel update|create` as an operator runs them: only the
options given change, the reset flags reset, and bad combinations exit non-zero with a message."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.integration


async def test_tenant_update_raises_and_resets_the_rate_limit(provisioner: Any) -> None:
    port = provisioner.port
    code, _, err = await run_cli(
        port, "tenant", "create", "--name", "Loja", "--slug", "loja", "--domain", "a.example.com"
    )
    assert code == 0, err
    code, out, err = await run_cli(port, "tenant", "update", "loja", "--rate-limit", "3000")
    assert code == 0, err
    assert "rate=3000/min " in out
    code, out, err = await run_cli(port, "tenant", "get", "loja", "--json")
    tenant = json.loads(out)
    assert tenant["rate_limit_per_minute"] == 3000
    assert tenant["allowed_domains"] == ["a.example.com"] and tenant["name"] == "Loja"

    code, out, err = await run_cli(
        port, "tenant", "update", "loja", "--default-rate-limit", "--clear-domains", "--json"
    )
    assert code == 0, err
    tenant = json.loads(out)
    assert tenant["rate_limit_per_minute"] == 100 and tenant["rate_limit_default"] is True
    assert "allowed_domains" not in tenant  # empty list: proto3 JSON leaves it out

    code, _, err = await run_cli(port, "tenant", "update", "loja")
    assert code == 2 and "nothing to change" in err
    code, _, err = await run_cli(
        port, "tenant", "update", "loja", "--rate-limit", "5", "--default-rate-limit"
    )
    assert code == 2 and "not allowed with argument" in err
    code, _, err = await run_cli(port, "tenant", "update", "loja", "--rate-limit", "0")
    assert code == 0, err  # 0 is the documented "default" too
    code, _, err = await run_cli(port, "tenant", "update", "loja", "--rate-limit", "-3")
    assert code == 1 and "rate_limit_per_minute" in err


async def test_funnel_pending_payment_event_and_update(provisioner: Any) -> None:
    port = provisioner.port
    await run_cli(port, "tenant", "create", "--name", "Loja", "--slug", "loja")
    code, out, err = await run_cli(
        port,
        "funnel",
        "create",
        "loja",
        "--name",
        "Curso",
        "--slug",
        "curso",
        "--pending-payment-event",
        "InitiateCheckout",
    )
    assert code == 0, err
    assert "pending=InitiateCheckout" in out
    code, out, err = await run_cli(
        port,
        "funnel",
        "update",
        "loja",
        "curso",
        "--pending-payment-event",
        "AddPaymentInfo",
        "--lookback-days",
        "14",
        "--json",
    )
    assert code == 0, err
    funnel = json.loads(out)
    assert funnel["pending_payment_event"] == "AddPaymentInfo" and funnel["lookback_days"] == 14
    code, out, err = await run_cli(
        port,
        "funnel",
        "update",
        "loja",
        "curso",
        "--pending-payment-event",
        "none",
        "--default-lookback",
        "--json",
    )
    assert code == 0, err
    funnel = json.loads(out)
    assert "pending_payment_event" not in funnel and funnel["lookback_days"] == 30
    code, _, err = await run_cli(
        port, "funnel", "update", "loja", "curso", "--pending-payment-event", "Purchase"
    )
    assert code == 2 and "invalid choice" in err
    code, _, err = await run_cli(port, "funnel", "update", "loja", "nope", "--name", "X")
    assert code == 1 and "NOT_FOUND" in err
