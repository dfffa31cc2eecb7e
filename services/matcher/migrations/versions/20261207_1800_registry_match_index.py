"""Matcher: index the registry's match_id, so a conversion's match is found by index.

Revision ID: 20261207_1800_registry_match_index
Revises: 20261207_0530_clicks_visitor_id
Create Date: 2026-12-07 18:00

The read API finds the event of a conversion with ``d.tenant_id = $1 AND (d.conversion_id = $2
OR d.match_id = (SELECT id FROM matcher.matches WHERE conversion_id = $2 ...))``
(``reports.BY_CONVERSION_ID_SQL`` and its batch form, the console's events page). Without an
index on ``match_id`` the OR cannot be a BitmapOr, and PostgreSQL read every registry row of the
tenant for each conversion asked: BatchGetMatches of one page (25 conversions) of a tenant with
150,000 registered conversions took ~2 s (``console.events_page`` in docs/benchmarks.md; 100 ms
at 6,000). With it, two index probes per conversion: ~1 ms for the page.
Partial (``match_id IS NOT NULL``): unmatched rows are never looked up by it. The build holds
writes to the registry until it ends; on a large table an operator can build it CONCURRENTLY
before deploying (IF NOT EXISTS).
"""

from alembic import op

revision = "20261207_1800_registry_match_index"
down_revision = "20261207_0530_clicks_visitor_id"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE INDEX IF NOT EXISTS dedupe_registry_match_idx ON matcher.dedupe_registry (match_id)
            WHERE match_id IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX matcher.dedupe_registry_match_idx")
