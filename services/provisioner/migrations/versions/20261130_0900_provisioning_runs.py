"""Provisioning saga: one row per run and one per step, resumable after a crash.

Revision ID: 20261130_0900_provisioning_runs
Revises: 20261129_0600_tenant_registry
Create Date: 2026-11-30 09:00
"""

from alembic import op

revision = "20261130_0900_provisioning_runs"
down_revision = "20261129_0600_tenant_registry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE provisioner.provisioning_runs (
            id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL REFERENCES provisioner.tenants (id) ON DELETE CASCADE,
            funnel_id uuid NOT NULL REFERENCES provisioner.funnels (id) ON DELETE CASCADE,
            status text NOT NULL CHECK (status IN
                ('running', 'awaiting_approval', 'published', 'failed', 'rolled_back')),
            custom_domain text NOT NULL,
            -- Identifiers the steps produced (container ids, DNS record id, URLs); never secrets.
            resources jsonb NOT NULL DEFAULT '{}',
            snippets jsonb NOT NULL DEFAULT '[]',
            error text,
            approved_by text,
            approval_note text,
            approved_at timestamptz,
            test_event_id text,
            test_event_at timestamptz,
            -- {"web": "<version id>", "server": "..."} published, and what was live before.
            published_versions jsonb,
            previous_live_versions jsonb,
            published_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        -- At most one unfinished run per funnel: ProvisionTenant resumes it instead of starting
        -- another, so two runs never create the same resources twice.
        CREATE UNIQUE INDEX provisioning_runs_unfinished_uq ON provisioner.provisioning_runs
            (funnel_id) WHERE status IN ('running', 'failed');
        -- "Latest run of this funnel" (GetProvisioningRun by funnel, re-runs).
        CREATE INDEX provisioning_runs_funnel_created_idx ON provisioner.provisioning_runs
            (funnel_id, created_at DESC);

        CREATE TABLE provisioner.provisioning_steps (
            run_id uuid NOT NULL REFERENCES provisioner.provisioning_runs (id) ON DELETE CASCADE,
            step text NOT NULL,
            position smallint NOT NULL,
            status text NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'skipped',
                'failed', 'rolling_back', 'rolled_back')),
            attempts integer NOT NULL DEFAULT 0,
            detail text NOT NULL DEFAULT '',
            -- Summaries of what was asked and answered (names, ids, statuses; never secrets).
            request jsonb NOT NULL DEFAULT '{}',
            response jsonb NOT NULL DEFAULT '{}',
            -- Scratch state that makes the step resumable (poll deadline, "create attempted").
            state jsonb NOT NULL DEFAULT '{}',
            -- Resources this run created in this step, in creation order: what rollback deletes.
            created jsonb NOT NULL DEFAULT '[]',
            started_at timestamptz,
            finished_at timestamptz,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (run_id, step)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE provisioner.provisioning_steps;
        DROP TABLE provisioner.provisioning_runs;
        """
    )
