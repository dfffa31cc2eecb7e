"""Conversions keep the buyer's hashed birth date and gender, whether they are renewals, and the
checkout page's URL (Meta ``db``/``ge``, ``action_source`` and ``event_source_url``).

Revision ID: 20261207_0500_events_birth_gender_renewal
Revises: 20261129_0700_events_funnel_relay_polling
Create Date: 2026-12-07 05:00
"""

from alembic import op

revision = "20261207_0500_events_birth_gender_renewal"
down_revision = "20261129_0700_events_funnel_relay_polling"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE ingestion.events
            ADD COLUMN birth_date_hash char(64) CHECK (birth_date_hash ~ '^[0-9a-f]{64}$'),
            ADD COLUMN gender_hash char(64) CHECK (gender_hash ~ '^[0-9a-f]{64}$'),
            ADD COLUMN renewal boolean NOT NULL DEFAULT false,
            ADD COLUMN checkout_url text;
        COMMENT ON COLUMN ingestion.events.birth_date_hash IS
            'SHA-256 of the date of birth as YYYYMMDD (Meta db)';
        COMMENT ON COLUMN ingestion.events.gender_hash IS 'SHA-256 of f or m (Meta ge)';
        COMMENT ON COLUMN ingestion.events.renewal IS
            'An automatic subscription charge after the first (Meta action_source system_generated)';
        COMMENT ON COLUMN ingestion.events.checkout_url IS
            'Checkout page URL sent by the gateway, if any';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE ingestion.events DROP COLUMN birth_date_hash, DROP COLUMN gender_hash,
            DROP COLUMN renewal, DROP COLUMN checkout_url;
        """
    )
