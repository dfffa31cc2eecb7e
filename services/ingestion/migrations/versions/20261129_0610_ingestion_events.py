"""Ingestion: normalised events (conversions and browser hits), redacted webhook receipts, outbox.

Revision ID: 20261129_0610_ingestion_events
Revises:
Create Date: 2026-11-29 06:10
"""

from alembic import op

from trackai_kit.outbox import outbox_ddl, outbox_drop_ddl

revision = "20261129_0610_ingestion_events"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        r"""
        -- One row per accepted conversion (gateway webhook) or browser hit (collect endpoint).
        -- Personal data only as SHA-256 of the Meta-normalised value (trackai_kit.pii).
        CREATE TABLE ingestion.events (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id uuid NOT NULL,
            kind text NOT NULL
                CHECK (kind IN ('conversion', 'page_view', 'lead', 'checkout_start', 'custom')),
            gateway text CHECK (gateway ~ '^[a-z0-9][a-z0-9_.-]{0,31}$'),
            order_id text CHECK (length(order_id) BETWEEN 1 AND 200),
            status text CHECK (status ~ '^[a-z_]{1,40}$'),
            gateway_status text,
            event_name text,
            event_id text CHECK (length(event_id) BETWEEN 1 AND 128),
            event_time timestamptz NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            amount numeric(18, 4) CHECK (amount >= 0),
            currency char(3) CHECK (currency ~ '^[A-Z]{3}$'),
            product_id text,
            product_name text,
            payment_method text,
            email_hash char(64) CHECK (email_hash ~ '^[0-9a-f]{64}$'),
            phone_hash char(64) CHECK (phone_hash ~ '^[0-9a-f]{64}$'),
            first_name_hash char(64) CHECK (first_name_hash ~ '^[0-9a-f]{64}$'),
            last_name_hash char(64) CHECK (last_name_hash ~ '^[0-9a-f]{64}$'),
            city_hash char(64) CHECK (city_hash ~ '^[0-9a-f]{64}$'),
            state_hash char(64) CHECK (state_hash ~ '^[0-9a-f]{64}$'),
            zip_hash char(64) CHECK (zip_hash ~ '^[0-9a-f]{64}$'),
            country_hash char(64) CHECK (country_hash ~ '^[0-9a-f]{64}$'),
            external_id_hash char(64) CHECK (external_id_hash ~ '^[0-9a-f]{64}$'),
            session_id text CHECK (length(session_id) BETWEEN 1 AND 128),
            page_url text,
            referrer text,
            fbclid text,
            fbc text,
            fbp text,
            client_ip inet,
            user_agent text,
            utm jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(utm) = 'object'),
            tracking jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tracking) = 'object'),
            is_test boolean NOT NULL DEFAULT false,
            CONSTRAINT events_conversion_fields_ck CHECK (
                kind <> 'conversion'
                OR (gateway IS NOT NULL AND order_id IS NOT NULL AND status IS NOT NULL)
            )
        );

        -- Idempotent accept: a repeated webhook (same tenant, gateway, order, status) is absorbed
        -- by INSERT ... ON CONFLICT (tenant_id, gateway, order_id, status)
        --     WHERE kind = 'conversion' DO NOTHING.
        CREATE UNIQUE INDEX events_conversion_dedupe_uq ON ingestion.events
            (tenant_id, gateway, order_id, status) WHERE kind = 'conversion';
        -- A browser beacon sent twice (sendBeacon retries) carries the same event id.
        CREATE UNIQUE INDEX events_hit_dedupe_uq ON ingestion.events
            (tenant_id, kind, event_id) WHERE kind <> 'conversion' AND event_id IS NOT NULL;
        -- Dashboard and gRPC list: conversions of a tenant by status, newest first.
        CREATE INDEX events_tenant_status_time_idx ON ingestion.events
            (tenant_id, status, event_time DESC) WHERE status IS NOT NULL;
        -- Dashboard and gRPC list without a status filter (conversions only).
        CREATE INDEX events_tenant_conversion_time_idx ON ingestion.events
            (tenant_id, event_time DESC) WHERE kind = 'conversion';

        -- Audit and replay of what the gateways sent, with personal data redacted.
        CREATE TABLE ingestion.webhook_receipts (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            received_at timestamptz NOT NULL DEFAULT now(),
            tenant_id uuid NOT NULL,
            gateway text NOT NULL CHECK (gateway ~ '^[a-z0-9][a-z0-9_.-]{0,31}$'),
            outcome text NOT NULL
                CHECK (outcome IN ('accepted', 'duplicate', 'ignored', 'test', 'invalid')),
            reason text,
            http_status smallint NOT NULL CHECK (http_status BETWEEN 100 AND 599),
            conversion_id uuid REFERENCES ingestion.events (id) ON DELETE SET NULL,
            order_id text,
            content_type text,
            body_sha256 char(64) CHECK (body_sha256 ~ '^[0-9a-f]{64}$'),
            body_redacted jsonb NOT NULL,
            headers jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(headers) = 'object')
        );
        -- Audit view: a tenant's receipts, newest first, optionally by outcome.
        CREATE INDEX webhook_receipts_tenant_time_idx ON ingestion.webhook_receipts
            (tenant_id, received_at DESC);
        CREATE INDEX webhook_receipts_tenant_outcome_time_idx ON ingestion.webhook_receipts
            (tenant_id, outcome, received_at DESC) WHERE outcome <> 'accepted';
        -- Replay of one order's webhooks.
        CREATE INDEX webhook_receipts_order_idx ON ingestion.webhook_receipts
            (tenant_id, gateway, order_id) WHERE order_id IS NOT NULL;
        CREATE INDEX webhook_receipts_conversion_idx ON ingestion.webhook_receipts (conversion_id)
            WHERE conversion_id IS NOT NULL;
        """
    )
    # Transactional outbox (trackai_kit.outbox relay), written in the same transaction as the rows.
    op.execute(outbox_ddl("ingestion"))


def downgrade() -> None:
    op.execute(outbox_drop_ddl("ingestion"))
    op.execute(
        """
        DROP TABLE ingestion.webhook_receipts;
        DROP TABLE ingestion.events;
        """
    )
