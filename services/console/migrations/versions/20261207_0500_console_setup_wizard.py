"""Console setup wizard: where each tenant's wizard stands, so it is closed and resumed from the
backend, and who approved the publish.

Revision ID: 20261207_0500_console_setup_wizard
Revises: 20261207_0225_console_auth
Create Date: 2026-12-07 05:00
"""

from alembic import op

revision = "20261207_0500_console_setup_wizard"
down_revision = "20261207_0225_console_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        r"""
        -- One row per tenant. Everything else the wizard shows is read from the provisioner and
        -- the agent; this is only the position, the funnel and run being set up, and the
        -- approval (also recorded by the provisioner on the run).
        CREATE TABLE console.setup_wizards (
            tenant_id uuid PRIMARY KEY,
            step text NOT NULL CHECK (step IN (
                'empresa', 'checkout', 'meta', 'provisionamento', 'codigo', 'teste', 'publicar'
            )),
            -- Verified webhooks count from here (the agent's validate_gateway_webhook).
            started_at timestamptz NOT NULL DEFAULT now(),
            funnel_slug text NOT NULL DEFAULT '',
            gateway text NOT NULL DEFAULT '',
            run_id text NOT NULL DEFAULT '',
            approved_by uuid REFERENCES console.users (id) ON DELETE SET NULL,
            approved_at timestamptz,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE console.setup_wizards;")
