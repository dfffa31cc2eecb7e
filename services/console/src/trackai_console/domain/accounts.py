"""Console accounts: roles, who may see which tenant, e-mail keys, one-time tokens, and the
sign-in rules (password length, failed-attempt limits). Pure logic, no I/O."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from trackai_kit import pii

Role = Literal["seller", "operator"]
ROLES: tuple[Role, ...] = ("seller", "operator")
MIN_PASSWORD_LENGTH = 10


class AccountError(ValueError):
    """A request the account rules refuse; ``message`` is shown to the user (pt-BR)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DuplicateAccount(AccountError):
    """The e-mail already has an account."""


class UnknownAccount(AccountError):
    """No account has this e-mail."""


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    role: Role
    tenant_id: uuid.UUID | None
    disabled: bool
    has_password: bool
    created_at: datetime
    last_login_at: datetime | None = None

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    def may_see(self, tenant_id: uuid.UUID) -> bool:
        """Operators see every tenant; a seller only their own."""
        return self.is_operator or self.tenant_id == tenant_id


@dataclass(frozen=True)
class Credentials:
    """What sign-in needs about an account (the password hash never leaves the service)."""

    user: User
    password_hash: str | None


def email_key(email: str) -> str:
    """The stored form of a login e-mail: SHA-256 of the normalised address."""
    digest = pii.email_hash(email)
    if digest is None:
        raise AccountError("Informe um e-mail válido.")
    return digest


def check_role(role: str, tenant_id: uuid.UUID | None) -> Role:
    if role not in ROLES:
        raise AccountError(f"Papel inválido: {role!r} (use seller ou operator).")
    if role == "seller" and tenant_id is None:
        raise AccountError("Um vendedor precisa de um tenant.")
    if role == "operator" and tenant_id is not None:
        raise AccountError("Um operador vê todos os tenants; não informe um tenant.")
    return "seller" if role == "seller" else "operator"


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"A senha precisa ter pelo menos {MIN_PASSWORD_LENGTH} caracteres.")


def token_hash(token: str) -> str:
    """Only this digest of a session id or password link is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A random 256-bit token, URL-safe (session ids, password links, CSRF tokens)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class LoginLimits:
    """Failed sign-ins allowed within ``window`` per e-mail and per client address."""

    per_email: int = 5
    per_address: int = 20
    window: timedelta = timedelta(minutes=15)

    def exceeded(self, failures_for_email: int, failures_for_address: int) -> bool:
        return failures_for_email >= self.per_email or failures_for_address >= self.per_address

    @property
    def message(self) -> str:
        minutes = int(self.window.total_seconds() // 60)
        return (
            "Muitas tentativas de entrada sem sucesso. Por segurança, aguarde "
            f"{minutes} minutos e tente de novo, ou peça um link de nova senha ao suporte."
        )
