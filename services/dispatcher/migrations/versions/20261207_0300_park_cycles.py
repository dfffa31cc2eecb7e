"""Parked events count their park cycles on the dispatch row instead of writing an attempt each.

Revision ID: 20261207_0300_park_cycles
Revises: 20261130_0900_dispatch_delivery
Create Date: 2026-12-07 03:00
"""

from alembic import op

revision = "20261207_0300_park_cycles"
down_revision = "20261130_0900_dispatch_delivery"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- Times the event was parked behind an open breaker (each return before the probe is
        -- one); only the first park writes a `breaker_open` attempt.
        ALTER TABLE dispatcher.dispatches
            ADD COLUMN park_cycles integer NOT NULL DEFAULT 0 CHECK (park_cycles >= 0);
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE dispatcher.dispatches DROP COLUMN park_cycles")
