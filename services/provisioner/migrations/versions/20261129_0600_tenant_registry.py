"""Tenant registry: tenants, funnels and their encrypted credentials.

Revision ID: 20261129_0600_tenant_registry
Revises:
Create Date: 2026-11-29 06:00
"""

from alembic import op

revision = "20261129_0600_tenant_registry"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE provisioner.tenants (
            id uuid PRIMARY KEY,
            slug text NOT NULL UNIQUE
                CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$'),
            name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
            rate_limit_per_minute integer CHECK (rate_limit_per_minute > 0),
            allowed_domains text[] NOT NULL DEFAULT '{}',
            status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
            created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        -- ListTenants pages in creation order with a (created_at, id) keyset cursor.
        CREATE INDEX tenants_created_idx ON provisioner.tenants (created_at, id);

        CREATE TABLE provisioner.funnels (
            id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL REFERENCES provisioner.tenants (id) ON DELETE CASCADE,
            slug text NOT NULL CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$'),
            name text NOT NULL,
            lookback_days integer NOT NULL DEFAULT 30 CHECK (lookback_days BETWEEN 1 AND 90),
            landing_url text,
            checkout_domains text[] NOT NULL DEFAULT '{}',
            test_event_code text,
            status_mapping jsonb NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (tenant_id, slug)
        );

        -- One row per (tenant, kind, provider, funnel). Secret fields live only in `ciphertext`
        -- (AES-256-GCM, associated data binds it to tenant/kind/provider/funnel so a row cannot
        -- be swapped onto another tenant); non-secret fields (pixel id) live in `public`.
        CREATE TABLE provisioner.credentials (
            id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL REFERENCES provisioner.tenants (id) ON DELETE CASCADE,
            funnel_id uuid REFERENCES provisioner.funnels (id) ON DELETE CASCADE,
            kind text NOT NULL CHECK (kind IN ('gateway', 'meta')),
            provider text NOT NULL,
            public jsonb NOT NULL DEFAULT '{}',
            key_id text NOT NULL,
            nonce bytea NOT NULL CHECK (length(nonce) = 12),
            ciphertext bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE UNIQUE INDEX credentials_scope_uq ON provisioner.credentials
            (tenant_id, kind, provider, coalesce(funnel_id, '00000000-0000-0000-0000-000000000000'));
        -- Key rotation walks the rows still sealed with an old key.
        CREATE INDEX credentials_key_id_idx ON provisioner.credentials (key_id);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE provisioner.credentials;
        DROP TABLE provisioner.funnels;
        DROP TABLE provisioner.tenants;
        """
    )
