"""What the console's use cases need from storage and password hashing."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from trackai_console.domain.accounts import Credentials, Role, User


class AccountStore(Protocol):
    async def create_user(
        self,
        *,
        email_hash: str,
        email_hint: str,
        role: Role,
        tenant_id: uuid.UUID | None,
        password_hash: str | None,
    ) -> User:
        """Raises DuplicateAccount when the e-mail has an account."""
        ...

    async def credentials(self, email_hash: str) -> Credentials | None: ...

    async def list_users(self, tenant_id: uuid.UUID | None) -> list[User]: ...

    async def disable_user(self, email_hash: str) -> User | None:
        """Disable the account and delete its sessions; None when unknown."""
        ...

    async def set_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None: ...

    async def recent_failures(
        self, email_hash: str, client_ip: str | None, since: datetime
    ) -> tuple[int, int]:
        """Failed sign-ins since ``since``: (for this e-mail, from this address)."""
        ...

    async def record_attempt(
        self, email_hash: str, client_ip: str | None, *, succeeded: bool
    ) -> None: ...

    async def create_session(
        self, id_hash: str, user_id: uuid.UUID, expires_at: datetime
    ) -> None: ...

    async def session_user(self, id_hash: str, now: datetime) -> User | None:
        """The enabled user of an unexpired session."""
        ...

    async def delete_session(self, id_hash: str) -> None: ...

    async def create_password_link(
        self, token_hash: str, user_id: uuid.UUID, expires_at: datetime
    ) -> None: ...

    async def password_link_user(self, token_hash: str, now: datetime) -> User | None:
        """The enabled user of an unused, unexpired link."""
        ...

    async def use_password_link(self, token_hash: str, now: datetime, password_hash: str) -> bool:
        """Atomically mark the link used, set the password and end the user's sessions; False
        when the link is unknown, used or expired."""
        ...


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str, password: str) -> bool: ...

    def needs_rehash(self, password_hash: str) -> bool: ...
