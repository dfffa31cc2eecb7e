"""Events record their funnel; the outbox stops NOTIFYing on every insert.

Revision ID: 20261129_0700_events_funnel_relay_polling
Revises: 20261129_0610_ingestion_events
Create Date: 2026-11-29 07:00

Webhook acceptance commits many small transactions concurrently; a NOTIFY in each one takes a
cluster-wide lock at commit and serialises them (measured: 297 vs 513 accepts/s in-process).
Ingestion's relay polls every INGESTION_RELAY_POLL_INTERVAL_S instead.
"""

from alembic import op

from trackai_kit.outbox import outbox_notify_ddl, outbox_notify_drop_ddl

revision = "20261129_0700_events_funnel_relay_polling"
down_revision = "20261129_0610_ingestion_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE ingestion.events ADD COLUMN funnel_id uuid;
        COMMENT ON COLUMN ingestion.events.funnel_id IS
            'Funnel the browser hit came from (tracking script data-funnel); null for webhooks';
        """
        + outbox_notify_drop_ddl("ingestion")
    )


def downgrade() -> None:
    op.execute(outbox_notify_ddl("ingestion") + "ALTER TABLE ingestion.events DROP COLUMN funnel_id;")
