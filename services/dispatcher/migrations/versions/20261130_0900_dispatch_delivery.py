"""Dispatcher delivery: routing and audit columns the consumer and the DLQ replay need.

Revision ID: 20261130_0900_dispatch_delivery
Revises: 20261129_0630_dispatcher_core
Create Date: 2026-11-30 09:00
"""

from alembic import op

revision = "20261130_0900_dispatch_delivery"
down_revision = "20261129_0630_dispatcher_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        r"""
        -- Enough of the original DispatchRequest to rebuild it for a replay or a parked release.
        ALTER TABLE dispatcher.dispatches
            ADD COLUMN funnel_id text,
            ADD COLUMN conversion_id text,
            -- The exact cause (failed validation rule, Meta's message); `reason` is the stable
            -- machine reason the DLQ filters on.
            ADD COLUMN detail text,
            -- Position on the retry ladder (0 = no retry used); a replay starts a fresh ladder.
            ADD COLUMN retry_step smallint NOT NULL DEFAULT 0 CHECK (retry_step >= 0),
            -- A batch holds the event until then: a second copy of the message (redelivery,
            -- duplicate publish) waits instead of reaching Meta concurrently.
            ADD COLUMN claim_expires_at timestamptz;
        -- DLQ list and replay across tenants (operators), newest first.
        CREATE INDEX dispatches_dead_updated_idx ON dispatcher.dispatches (updated_at DESC)
            WHERE state = 'dead';

        ALTER TABLE dispatcher.dlq_replays ADD COLUMN note text NOT NULL DEFAULT ''
            CHECK (length(note) <= 500);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE dispatcher.dlq_replays DROP COLUMN note;
        DROP INDEX dispatcher.dispatches_dead_updated_idx;
        ALTER TABLE dispatcher.dispatches
            DROP COLUMN funnel_id,
            DROP COLUMN conversion_id,
            DROP COLUMN detail,
            DROP COLUMN retry_step,
            DROP COLUMN claim_expires_at;
        """
    )
