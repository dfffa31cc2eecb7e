"""Account rules and the pt-BR formatting helpers (pure logic)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from trackai_console.domain.accounts import (
    AccountError,
    LoginLimits,
    User,
    check_role,
    email_key,
)
from trackai_console.entrypoints.pages import brl, decimal, local_path, local_time
from trackai_console.settings import Settings


def test_email_key_is_case_insensitive_and_refuses_garbage() -> None:
    assert email_key(" Ana@Loja.com.br ") == email_key("ana@loja.com.br")
    with pytest.raises(AccountError, match="e-mail válido"):
        email_key("ana")


def test_roles_and_tenants_go_together() -> None:
    tenant = uuid.uuid4()
    assert check_role("seller", tenant) == "seller"
    assert check_role("operator", None) == "operator"
    for role, tid in (("seller", None), ("operator", tenant), ("admin", None)):
        with pytest.raises(AccountError):
            check_role(role, tid)


def test_a_seller_sees_only_their_tenant() -> None:
    mine, other = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    seller = User(uuid.uuid4(), "seller", mine, False, True, now)
    operator = User(uuid.uuid4(), "operator", None, False, True, now)
    assert seller.may_see(mine) and not seller.may_see(other)
    assert operator.may_see(other)


def test_login_limits() -> None:
    limits = LoginLimits(per_email=5, per_address=20)
    assert not limits.exceeded(4, 19)
    assert limits.exceeded(5, 0) and limits.exceeded(0, 20)


def test_money_and_time_read_as_in_brazil() -> None:
    assert brl(123456) == "R$ 1.234,56"
    assert brl(-5) == "-R$ 0,05"
    assert local_time(datetime(2026, 12, 7, 2, 30, tzinfo=UTC)) == "06/12/2026 23:30"
    assert local_time(None) == "—"
    assert decimal(6.05, 2) == "6,05" and decimal(7.25) == "7,2"


def test_only_local_paths_after_sign_in() -> None:
    assert local_path("/eventos?status=dead") == "/eventos?status=dead"
    for bad in ("//evil.example", "https://evil.example", "/\\evil.example", "eventos"):
        assert local_path(bad) == "/"


def test_cookies_are_secure_outside_local_and_test() -> None:
    assert not Settings(TRACKAI_ENV="local").secure_cookies
    assert not Settings(TRACKAI_ENV="test").secure_cookies
    assert Settings(TRACKAI_ENV="production").secure_cookies
