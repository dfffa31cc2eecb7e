"""Provisioning progress through a transactional outbox, and rolling back a publish.

Revision ID: 20261201_0900_status_outbox_publish_rollback
Revises: 20261130_0900_provisioning_runs
Create Date: 2026-12-01 09:00
"""

from alembic import op

from trackai_kit.outbox import outbox_ddl, outbox_drop_ddl

revision = "20261201_0900_status_outbox_publish_rollback"
down_revision = "20261130_0900_provisioning_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # StatusUpdates on trackai.status, written in the transaction that records a step's status and
    # published by the trackai_kit relay in `serve`.
    op.execute(outbox_ddl("provisioner"))
    op.execute(
        """
        ALTER TABLE provisioner.provisioning_runs
            DROP CONSTRAINT provisioning_runs_status_check,
            ADD CONSTRAINT provisioning_runs_status_check CHECK (status IN
                ('running', 'awaiting_approval', 'published', 'failed', 'rolled_back',
                 'publish_rolled_back')),
            -- RollbackPublish: who re-published the previous versions, why and when.
            ADD COLUMN rolled_back_by text,
            ADD COLUMN rollback_note text,
            ADD COLUMN rolled_back_at timestamptz,
            -- {"web": id, "server": id} re-published by the rollback (sides with a previous
            -- live version only).
            ADD COLUMN restored_versions jsonb;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        -- Lossy but keeps the run and its steps: the old schema cannot say "rolled back".
        UPDATE provisioner.provisioning_runs SET status = 'published'
            WHERE status = 'publish_rolled_back';
        ALTER TABLE provisioner.provisioning_runs
            DROP COLUMN restored_versions,
            DROP COLUMN rolled_back_at,
            DROP COLUMN rollback_note,
            DROP COLUMN rolled_back_by,
            DROP CONSTRAINT provisioning_runs_status_check,
            ADD CONSTRAINT provisioning_runs_status_check CHECK (status IN
                ('running', 'awaiting_approval', 'published', 'failed', 'rolled_back'));
        """
    )
    op.execute(outbox_drop_ddl("provisioner"))
