"""Ingestion: a tenant's conversions of one funnel, newest first (the console's funnel filter).

Revision ID: 20261207_1800_events_tenant_funnel
Revises: 20261207_0500_events_birth_gender_renewal
Create Date: 2026-12-07 18:00

ListConversions with a funnel (``tenant_id = $1 AND kind = 'conversion' AND event_time >= $2
AND funnel_id = $3 ORDER BY event_time DESC, id DESC LIMIT $4``) had only the tenant's time
index to use. Its custom plan walks that index and stops after a page; but after five
executions asyncpg's cached statement gets the generic plan, which rates ``funnel_id = $3`` at
about one row (thousands of funnels in the table's statistics) and so sorts every conversion of
the period instead: ~0.2-0.3 s per page for a tenant with 150,000 conversions (35,000 in the
default 7 days), the funnel filter of ``console.events_page`` in docs/benchmarks.md. With this
index both plans read the page's rows in order: ~0.1 ms. Partial: only conversions that carry a
funnel. The build holds writes to ``events`` until it ends; on a large table an operator can
build it CONCURRENTLY before deploying (IF NOT EXISTS).
"""

from alembic import op

revision = "20261207_1800_events_tenant_funnel"
down_revision = "20261207_0500_events_birth_gender_renewal"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE INDEX IF NOT EXISTS events_tenant_funnel_time_idx ON ingestion.events
            (tenant_id, funnel_id, event_time DESC, id DESC)
            WHERE kind = 'conversion' AND funnel_id IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX ingestion.events_tenant_funnel_time_idx")
