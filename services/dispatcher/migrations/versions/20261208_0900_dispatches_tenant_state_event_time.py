"""Dispatcher: a tenant's events in one delivery state by event time (ListEventStates).

Revision ID: 20261208_0900_dispatches_tenant_state_event_time
Revises: 20261207_1800_dispatches_tenant_event_time
Create Date: 2026-12-08 09:00

The console's events page filtered by a delivery status ("Na fila de falhas", "Enviado à Meta",
...) reads ``WHERE tenant_id = $1 AND state = ANY($2) ... ORDER BY event_time DESC, event_id
DESC LIMIT n``. With this index each state is one ordered range, so a rare state (3 % of a
tenant's events) reads a page's rows and no more; without it PostgreSQL walks the tenant's
events by time and drops ~30 rows for every one it keeps. Every state change already rewrites
``dispatches_tenant_state_updated_idx``; this adds one more index entry per change. The build
holds writes to ``dispatches`` until it ends; on a large table an operator can build it
CONCURRENTLY before deploying (IF NOT EXISTS).
"""

from alembic import op

revision = "20261208_0900_dispatches_tenant_state_event_time"
down_revision = "20261207_1800_dispatches_tenant_event_time"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE INDEX IF NOT EXISTS dispatches_tenant_state_event_time_idx
            ON dispatcher.dispatches (tenant_id, state, event_time DESC, event_id DESC);
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX dispatcher.dispatches_tenant_state_event_time_idx")
