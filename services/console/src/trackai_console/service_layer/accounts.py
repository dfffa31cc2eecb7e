"""Console account use cases: sign-in with a rate limit, sessions, sign-out, one-time password
links, and the operator's account management (`trackai user ...`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from trackai_console.domain.accounts import (
    AccountError,
    LoginLimits,
    UnknownAccount,
    User,
    check_password,
    check_role,
    email_key,
    new_token,
    token_hash,
)
from trackai_console.service_layer.ports import AccountStore, PasswordHasher

BAD_CREDENTIALS = "E-mail ou senha incorretos."


class SignInRefused(AccountError):
    """Wrong e-mail/password, disabled account or too many failures (message says which)."""


@dataclass(frozen=True)
class SignedIn:
    user: User
    #: The cookie value; only its hash is stored.
    session_token: str
    expires_at: datetime


@dataclass(frozen=True)
class PasswordLink:
    token: str
    expires_at: datetime


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Accounts:
    """Every account use case shares the store, the hasher and the clock, so they live together."""

    def __init__(
        self,
        store: AccountStore,
        hasher: PasswordHasher,
        *,
        session_ttl: timedelta,
        link_ttl: timedelta,
        invite_ttl: timedelta,
        limits: LoginLimits,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._store = store
        self._hasher = hasher
        self._session_ttl = session_ttl
        self._link_ttl = link_ttl
        self._invite_ttl = invite_ttl
        self.limits = limits
        self._clock = clock
        # Verified against when the e-mail is unknown, so a miss costs as long as a hit and
        # response times do not reveal which e-mails have accounts.
        self._decoy_hash = hasher.hash(new_token())

    async def _verify(self, password_hash: str, password: str) -> bool:
        # argon2id takes tens of milliseconds of CPU: keep the event loop free meanwhile.
        return await asyncio.to_thread(self._hasher.verify, password_hash, password)

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def sign_in(self, email: str, password: str, client_ip: str | None) -> SignedIn:
        """A new session for valid credentials. Refused (with a pt-BR message) for a wrong pair,
        a disabled account, or once the failed attempts of the e-mail or address hit the limit
        (checked before the password, so guessing stops even with the right one)."""
        try:
            key = email_key(email)
        except AccountError:
            raise SignInRefused(BAD_CREDENTIALS) from None
        now = self._clock()
        by_email, by_address = await self._store.recent_failures(
            key, client_ip, now - self.limits.window
        )
        if self.limits.exceeded(by_email, by_address):
            raise SignInRefused(self.limits.message)
        found = await self._store.credentials(key)
        stored_hash = found.password_hash if found and found.password_hash else self._decoy_hash
        valid = await self._verify(stored_hash, password)
        if found is None or found.password_hash is None or not valid:
            await self._store.record_attempt(key, client_ip, succeeded=False)
            raise SignInRefused(BAD_CREDENTIALS)
        if found.user.disabled:
            await self._store.record_attempt(key, client_ip, succeeded=False)
            raise SignInRefused("Esta conta está desativada. Fale com o suporte.")
        await self._store.record_attempt(key, client_ip, succeeded=True)
        if self._hasher.needs_rehash(found.password_hash):
            await self._store.set_password_hash(found.user.id, await self._hash(password))
        token = new_token()
        expires_at = now + self._session_ttl
        await self._store.create_session(token_hash(token), found.user.id, expires_at)
        return SignedIn(found.user, token, expires_at)

    async def current_user(self, session_token: str) -> User | None:
        """The signed-in user of a session cookie, or None (unknown, expired, disabled)."""
        return await self._store.session_user(token_hash(session_token), self._clock())

    async def sign_out(self, session_token: str) -> None:
        await self._store.delete_session(token_hash(session_token))

    async def create_user(
        self, email: str, role: str, tenant_id: uuid.UUID | None, password: str | None
    ) -> tuple[User, PasswordLink | None]:
        """Create an account; without a password it is an invitation and gets a one-time link."""
        key = email_key(email)
        checked_role = check_role(role, tenant_id)
        if password:
            check_password(password)
        user = await self._store.create_user(
            email_hash=key,
            role=checked_role,
            tenant_id=tenant_id,
            password_hash=await self._hash(password) if password else None,
        )
        if password:
            return user, None
        return user, await self._issue_link(user.id, self._invite_ttl)

    async def list_users(self, tenant_id: uuid.UUID | None) -> list[User]:
        return await self._store.list_users(tenant_id)

    async def disable_user(self, email: str) -> User:
        user = await self._store.disable_user(email_key(email))
        if user is None:
            raise UnknownAccount("Nenhuma conta com este e-mail.")
        return user

    async def password_link(self, email: str) -> PasswordLink:
        """A one-time link to choose a new password (the operator hands it over)."""
        found = await self._store.credentials(email_key(email))
        if found is None:
            raise UnknownAccount("Nenhuma conta com este e-mail.")
        if found.user.disabled:
            raise AccountError("Esta conta está desativada.")
        return await self._issue_link(found.user.id, self._link_ttl)

    async def _issue_link(self, user_id: uuid.UUID, ttl: timedelta) -> PasswordLink:
        token = new_token()
        expires_at = self._clock() + ttl
        await self._store.create_password_link(token_hash(token), user_id, expires_at)
        return PasswordLink(token, expires_at)

    async def link_user(self, token: str) -> User | None:
        """The account a password link is for, while it is usable."""
        return await self._store.password_link_user(token_hash(token), self._clock())

    async def choose_password(self, token: str, password: str) -> None:
        """Use a one-time link: set the password and end every session of the account."""
        check_password(password)
        new_hash = await self._hash(password)
        if not await self._store.use_password_link(token_hash(token), self._clock(), new_hash):
            raise AccountError("Este link é inválido, já foi usado ou expirou. Peça um novo.")
