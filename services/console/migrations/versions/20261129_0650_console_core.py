"""Console: operator accounts and the daily Event Match Quality read model.

Revision ID: 20261129_0650_console_core
Revises:
Create Date: 2026-11-29 06:50
"""

from alembic import op

revision = "20261129_0650_console_core"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        r"""
        -- Console accounts. The login e-mail is kept only as its SHA-256 (trackai_kit.pii):
        -- sign-in hashes what the user types and looks the hash up.
        CREATE TABLE console.users (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            email_hash char(64) NOT NULL CHECK (email_hash ~ '^[0-9a-f]{64}$'),
            -- A self-describing password hash (e.g. scrypt/argon2 encoded string), never a secret.
            password_hash text NOT NULL,
            role text NOT NULL DEFAULT 'viewer' CHECK (role IN ('admin', 'operator', 'viewer')),
            -- NULL: operator across tenants; otherwise the one tenant this user may see.
            tenant_id uuid,
            created_at timestamptz NOT NULL DEFAULT now(),
            last_login_at timestamptz,
            disabled_at timestamptz,
            CONSTRAINT users_email_hash_uq UNIQUE (email_hash)
        );
        CREATE INDEX users_tenant_idx ON console.users (tenant_id) WHERE tenant_id IS NOT NULL;

        -- Dashboard read model, fed by the status exchange: one row per tenant and day (UTC).
        CREATE TABLE console.emq_daily (
            tenant_id uuid NOT NULL,
            day date NOT NULL,
            events integer NOT NULL DEFAULT 0 CHECK (events >= 0),
            emq_sum numeric(14, 2) NOT NULL DEFAULT 0 CHECK (emq_sum >= 0),
            below_threshold integer NOT NULL DEFAULT 0 CHECK (below_threshold >= 0),
            matched_deterministic integer NOT NULL DEFAULT 0,
            matched_semi integer NOT NULL DEFAULT 0,
            matched_probabilistic integer NOT NULL DEFAULT 0,
            unmatched integer NOT NULL DEFAULT 0,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, day)
        );
        -- The primary key serves "a tenant's last N days"; this serves "all tenants on a day".
        CREATE INDEX emq_daily_day_idx ON console.emq_daily (day);

        -- Status messages already folded into the read model (redelivery-safe).
        CREATE TABLE console.inbox (
            message_id text PRIMARY KEY,
            processed_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX inbox_processed_at_idx ON console.inbox (processed_at);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE console.inbox;
        DROP TABLE console.emq_daily;
        DROP TABLE console.users;
        """
    )
