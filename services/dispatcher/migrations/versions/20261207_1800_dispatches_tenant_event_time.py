"""Dispatcher: a tenant's events by event time (the EMQ page's parameter coverage).

Revision ID: 20261207_1800_dispatches_tenant_event_time
Revises: 20261207_0300_park_cycles
Create Date: 2026-12-07 18:00

GetParameterCoverage reads ``WHERE tenant_id = $1 AND event_time >= $2 AND event_time < $3``
(a tenant's last 7 days). No index had ``event_time`` after ``tenant_id``: with 1,000,000
dispatches across 1,000 tenants PostgreSQL chose a parallel sequential scan of the whole table
(~0.5 s of the ~0.86 s call for a tenant with 150,000 events, `console.events_page` in
docs/benchmarks.md); with this index the scan reads only the week's rows (~80 ms) and the call
takes ~0.43 s, the rest being the per-key aggregation of the payloads. The build holds writes to
``dispatches`` until it ends; on a large table an operator can build it CONCURRENTLY before
deploying (IF NOT EXISTS).
"""

from alembic import op

revision = "20261207_1800_dispatches_tenant_event_time"
down_revision = "20261207_0300_park_cycles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE INDEX IF NOT EXISTS dispatches_tenant_event_time_idx ON dispatcher.dispatches
            (tenant_id, event_time);
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX dispatcher.dispatches_tenant_event_time_idx")
