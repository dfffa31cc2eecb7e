"""Sessions keep the tracking script's stable visitor id: Meta's external_id, shared with the pixel.

Revision ID: 20261207_0530_clicks_visitor_id
Revises: 20261201_1000_clicks_recent_sessions_index
Create Date: 2026-12-07 05:30
"""

from alembic import op

revision = "20261207_0530_clicks_visitor_id"
down_revision = "20261201_1000_clicks_recent_sessions_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE matcher.clicks ADD COLUMN visitor_id char(64)
            CHECK (visitor_id ~ '^[0-9a-f]{64}$');
        COMMENT ON COLUMN matcher.clicks.visitor_id IS
            'Tracking script visitor id (_tai_vid), sent to Meta as external_id as the pixel is';
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE matcher.clicks DROP COLUMN visitor_id;")
