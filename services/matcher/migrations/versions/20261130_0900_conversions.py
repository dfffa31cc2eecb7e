"""Matcher: funnel of each session, the conversion log, dispatch facts and daily match statistics.

Revision ID: 20261130_0900_conversions
Revises: 20261129_0620_matcher_core
Create Date: 2026-11-30 09:00
"""

from alembic import op

revision = "20261130_0900_conversions"
down_revision = "20261129_0620_matcher_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        r"""
        -- The funnel whose page the session landed on (the snippet knows it): a matched
        -- conversion is sent to that funnel's Meta destination.
        ALTER TABLE matcher.clicks ADD COLUMN funnel_id uuid;

        -- What became of each registered conversion event, and the facts the export and the
        -- daily statistics need without another join.
        ALTER TABLE matcher.dedupe_registry
            ADD COLUMN conversion_id uuid,
            ADD COLUMN event_time timestamptz,
            ADD COLUMN funnel_id uuid,
            ADD COLUMN pixel_id text,
            ADD COLUMN outcome text NOT NULL DEFAULT 'queued'
                CHECK (outcome IN ('queued', 'no_destination'));
        -- Export, review lists and explain pages of a tenant, newest conversion first (keyset
        -- pagination on (event_time, event_id)).
        CREATE INDEX dedupe_registry_tenant_event_time_idx ON matcher.dedupe_registry
            (tenant_id, event_time DESC, event_id DESC);
        -- ExplainMatch by ingestion's conversion id (the message that registered the event, or
        -- the one that was matched first).
        CREATE INDEX dedupe_registry_conversion_idx ON matcher.dedupe_registry (conversion_id)
            WHERE conversion_id IS NOT NULL;
        CREATE INDEX matches_conversion_idx ON matcher.matches (conversion_id)
            WHERE conversion_id IS NOT NULL;

        -- Every conversion message and what the matcher did with it (audit; refunds and
        -- chargebacks are recorded here and never produce a second Purchase).
        CREATE TABLE matcher.conversion_log (
            id bigserial PRIMARY KEY,
            tenant_id uuid NOT NULL,
            gateway text NOT NULL,
            order_id text NOT NULL,
            message_id text NOT NULL,
            conversion_id uuid,
            status text NOT NULL,
            event_time timestamptz NOT NULL,
            event_name text,
            event_id char(64) CHECK (event_id ~ '^[0-9a-f]{64}$'),
            disposition text NOT NULL CHECK (disposition IN (
                'queued', 'duplicate', 'not_dispatched', 'no_destination')),
            reason text,
            recorded_at timestamptz NOT NULL DEFAULT now()
        );
        -- The history of one order (explain, support questions).
        CREATE INDEX conversion_log_order_idx ON matcher.conversion_log
            (tenant_id, gateway, order_id, recorded_at);

        -- Match figures per tenant and UTC day of the conversion, maintained in the transaction
        -- that registers each event (the dashboard and GetMatchStats read it).
        CREATE TABLE matcher.match_daily_stats (
            tenant_id uuid NOT NULL,
            day date NOT NULL,
            conversions integer NOT NULL DEFAULT 0,
            deterministic integer NOT NULL DEFAULT 0,
            semi integer NOT NULL DEFAULT 0,
            probabilistic integer NOT NULL DEFAULT 0,
            unmatched integer NOT NULL DEFAULT 0,
            emq_sum numeric(14, 2) NOT NULL DEFAULT 0,
            emq_events integer NOT NULL DEFAULT 0,
            low_emq_events integer NOT NULL DEFAULT 0,
            PRIMARY KEY (tenant_id, day)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE matcher.match_daily_stats;
        DROP TABLE matcher.conversion_log;
        DROP INDEX matcher.matches_conversion_idx;
        DROP INDEX matcher.dedupe_registry_conversion_idx;
        DROP INDEX matcher.dedupe_registry_tenant_event_time_idx;
        ALTER TABLE matcher.dedupe_registry
            DROP COLUMN outcome, DROP COLUMN pixel_id, DROP COLUMN funnel_id,
            DROP COLUMN event_time, DROP COLUMN conversion_id;
        ALTER TABLE matcher.clicks DROP COLUMN funnel_id;
        """
    )
