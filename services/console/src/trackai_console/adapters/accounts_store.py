"""PostgreSQL store of console accounts, sessions, sign-in attempts and password links."""
# ruff: noqa: S608 - the f-strings only splice the constant column list; values are bind parameters

from __future__ import annotations

import uuid
from datetime import datetime
from typing import cast

import asyncpg

from trackai_console.domain.accounts import Credentials, DuplicateAccount, Role, User

_USER_COLUMNS = (
    "u.id, u.role, u.tenant_id, u.disabled_at IS NOT NULL AS disabled, "
    "u.password_hash IS NOT NULL AS has_password, u.created_at, u.last_login_at"
)


def _user(row: asyncpg.Record) -> User:
    return User(
        id=row["id"],
        role=cast(Role, row["role"]),
        tenant_id=row["tenant_id"],
        disabled=row["disabled"],
        has_password=row["has_password"],
        created_at=row["created_at"],
        last_login_at=row["last_login_at"],
    )


class PostgresAccountStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create_user(
        self,
        *,
        email_hash: str,
        role: Role,
        tenant_id: uuid.UUID | None,
        password_hash: str | None,
    ) -> User:
        try:
            row = await self._pool.fetchrow(
                f"""
                INSERT INTO console.users AS u
                    (email_hash, role, tenant_id, password_hash)
                VALUES ($1, $2, $3, $4)
                RETURNING {_USER_COLUMNS}
                """,
                email_hash,
                role,
                tenant_id,
                password_hash,
            )
        except asyncpg.UniqueViolationError:
            raise DuplicateAccount("Já existe uma conta com este e-mail.") from None
        assert row is not None  # INSERT ... RETURNING yields the row
        return _user(row)

    async def credentials(self, email_hash: str) -> Credentials | None:
        row = await self._pool.fetchrow(
            f"SELECT {_USER_COLUMNS}, u.password_hash FROM console.users u WHERE email_hash = $1",
            email_hash,
        )
        return None if row is None else Credentials(_user(row), row["password_hash"])

    async def list_users(self, tenant_id: uuid.UUID | None) -> list[User]:
        rows = await self._pool.fetch(
            f"""
            SELECT {_USER_COLUMNS} FROM console.users u
            WHERE $1::uuid IS NULL OR u.tenant_id = $1
            ORDER BY u.created_at, u.id
            """,
            tenant_id,
        )
        return [_user(r) for r in rows]

    async def disable_user(self, email_hash: str) -> User | None:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""
                UPDATE console.users u SET disabled_at = coalesce(disabled_at, now())
                WHERE email_hash = $1 RETURNING {_USER_COLUMNS}
                """,
                email_hash,
            )
            if row is None:
                return None
            await conn.execute("DELETE FROM console.sessions WHERE user_id = $1", row["id"])
        return _user(row)

    async def set_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        await self._pool.execute(
            "UPDATE console.users SET password_hash = $2 WHERE id = $1", user_id, password_hash
        )

    async def recent_failures(
        self, email_hash: str, client_ip: str | None, since: datetime
    ) -> tuple[int, int]:
        row = await self._pool.fetchrow(
            """
            SELECT
              (SELECT count(*) FROM console.login_attempts
                WHERE email_hash = $1 AND NOT succeeded AND attempted_at >= $3) AS by_email,
              (SELECT count(*) FROM console.login_attempts
                WHERE client_ip = $2::inet AND NOT succeeded AND attempted_at >= $3) AS by_ip
            """,
            email_hash,
            client_ip,
            since,
        )
        assert row is not None  # a SELECT without FROM yields one row
        return int(row["by_email"]), int(row["by_ip"])

    async def record_attempt(
        self, email_hash: str, client_ip: str | None, *, succeeded: bool
    ) -> None:
        await self._pool.execute(
            "INSERT INTO console.login_attempts (email_hash, client_ip, succeeded) "
            "VALUES ($1, $2::inet, $3)",
            email_hash,
            client_ip,
            succeeded,
        )

    async def create_session(self, id_hash: str, user_id: uuid.UUID, expires_at: datetime) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO console.sessions (id_hash, user_id, expires_at) VALUES ($1, $2, $3)",
                id_hash,
                user_id,
                expires_at,
            )
            await conn.execute(
                "UPDATE console.users SET last_login_at = now() WHERE id = $1", user_id
            )

    async def session_user(self, id_hash: str, now: datetime) -> User | None:
        row = await self._pool.fetchrow(
            f"""
            SELECT {_USER_COLUMNS} FROM console.sessions s
            JOIN console.users u ON u.id = s.user_id
            WHERE s.id_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL
            """,
            id_hash,
            now,
        )
        return None if row is None else _user(row)

    async def delete_session(self, id_hash: str) -> None:
        await self._pool.execute("DELETE FROM console.sessions WHERE id_hash = $1", id_hash)

    async def create_password_link(
        self, token_hash: str, user_id: uuid.UUID, expires_at: datetime
    ) -> None:
        await self._pool.execute(
            "INSERT INTO console.password_resets (token_hash, user_id, expires_at) "
            "VALUES ($1, $2, $3)",
            token_hash,
            user_id,
            expires_at,
        )

    async def password_link_user(self, token_hash: str, now: datetime) -> User | None:
        row = await self._pool.fetchrow(
            f"""
            SELECT {_USER_COLUMNS} FROM console.password_resets r
            JOIN console.users u ON u.id = r.user_id
            WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > $2
              AND u.disabled_at IS NULL
            """,
            token_hash,
            now,
        )
        return None if row is None else _user(row)

    async def use_password_link(self, token_hash: str, now: datetime, password_hash: str) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            user_id = await conn.fetchval(
                """
                UPDATE console.password_resets r SET used_at = $2
                FROM console.users u
                WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > $2
                  AND u.id = r.user_id AND u.disabled_at IS NULL
                RETURNING r.user_id
                """,
                token_hash,
                now,
            )
            if user_id is None:
                return False
            await conn.execute(
                "UPDATE console.users SET password_hash = $2 WHERE id = $1", user_id, password_hash
            )
            # A new password ends every existing session (a thief's included).
            await conn.execute("DELETE FROM console.sessions WHERE user_id = $1", user_id)
        return True
