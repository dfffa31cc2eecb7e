"""Console sign-in: seller/operator roles, sessions, login attempts and password-reset links.

Revision ID: 20261207_0225_console_auth
Revises: 20261129_0650_console_core
Create Date: 2026-12-07 02:25
"""

from alembic import op

revision = "20261207_0225_console_auth"
down_revision = "20261129_0650_console_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        r"""
        -- No account exists yet (the console had no sign-in), so the old role set is replaced.
        ALTER TABLE console.users DROP CONSTRAINT users_role_check;
        ALTER TABLE console.users ALTER COLUMN role DROP DEFAULT;
        ALTER TABLE console.users ADD CONSTRAINT users_role_check
            CHECK (role IN ('seller', 'operator'));
        -- A seller belongs to exactly one tenant; an operator to none (sees every tenant).
        ALTER TABLE console.users ADD CONSTRAINT users_role_tenant_check
            CHECK ((role = 'seller') = (tenant_id IS NOT NULL));
        -- An invited user has no password until they follow the one-time link.
        ALTER TABLE console.users ALTER COLUMN password_hash DROP NOT NULL;

        -- Signed-in browsers. The cookie carries a random id; only its SHA-256 is stored, so a
        -- copy of this table cannot be replayed as a cookie.
        CREATE TABLE console.sessions (
            id_hash char(64) PRIMARY KEY CHECK (id_hash ~ '^[0-9a-f]{64}$'),
            user_id uuid NOT NULL REFERENCES console.users (id) ON DELETE CASCADE,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL
        );
        CREATE INDEX sessions_user_idx ON console.sessions (user_id);
        CREATE INDEX sessions_expires_idx ON console.sessions (expires_at);

        -- Every sign-in attempt, for the rate limit (failures per e-mail and per address within
        -- a window). The e-mail is its hash, as in users.
        CREATE TABLE console.login_attempts (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            email_hash char(64) NOT NULL CHECK (email_hash ~ '^[0-9a-f]{64}$'),
            client_ip inet,
            succeeded boolean NOT NULL,
            attempted_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX login_attempts_email_idx
            ON console.login_attempts (email_hash, attempted_at) WHERE NOT succeeded;
        CREATE INDEX login_attempts_ip_idx
            ON console.login_attempts (client_ip, attempted_at) WHERE NOT succeeded;

        -- One-time password links (reset and invitation); only the token's SHA-256 is stored.
        CREATE TABLE console.password_resets (
            token_hash char(64) PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
            user_id uuid NOT NULL REFERENCES console.users (id) ON DELETE CASCADE,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            used_at timestamptz
        );
        CREATE INDEX password_resets_user_idx ON console.password_resets (user_id);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE console.password_resets;
        DROP TABLE console.login_attempts;
        DROP TABLE console.sessions;
        DELETE FROM console.users WHERE password_hash IS NULL;
        ALTER TABLE console.users ALTER COLUMN password_hash SET NOT NULL;
        ALTER TABLE console.users DROP CONSTRAINT users_role_tenant_check;
        ALTER TABLE console.users DROP CONSTRAINT users_role_check;
        UPDATE console.users SET role = 'viewer' WHERE role = 'seller';
        ALTER TABLE console.users ADD CONSTRAINT users_role_check
            CHECK (role IN ('admin', 'operator', 'viewer'));
        ALTER TABLE console.users ALTER COLUMN role SET DEFAULT 'viewer';
        """
    )
