"""Agent: the guided step and token accounting of a session, per-entry timings, tokens and test
event ids, escalation summaries, and the outbox of support-webhook deliveries.

Revision ID: 20261207_0230_agent_conversation
Revises: 20261129_0640_agent_core
Create Date: 2026-12-07 02:30
"""

from alembic import op

from trackai_kit.outbox import outbox_ddl, outbox_drop_ddl

revision = "20261207_0230_agent_conversation"
down_revision = "20261129_0640_agent_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        r"""
        ALTER TABLE agent.sessions
            ADD COLUMN funnel_slug text NOT NULL DEFAULT '',
            ADD COLUMN step text NOT NULL DEFAULT 'meta_token',
            ADD COLUMN webhook_verified boolean NOT NULL DEFAULT false,
            ADD COLUMN setup_started_at timestamptz NOT NULL DEFAULT now(),
            ADD COLUMN prompt_tokens bigint NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
            ADD COLUMN completion_tokens bigint NOT NULL DEFAULT 0
                CHECK (completion_tokens >= 0);

        ALTER TABLE agent.transcript_entries
            DROP CONSTRAINT transcript_entries_role_check,
            ADD CONSTRAINT transcript_entries_role_check
                CHECK (role IN ('system', 'user', 'assistant', 'tool', 'operator')),
            DROP CONSTRAINT transcript_entries_outcome_check,
            ADD CONSTRAINT transcript_entries_outcome_check
                CHECK (outcome IN ('ok', 'warning', 'error')),
            ADD COLUMN tool_call_id text,
            ADD COLUMN duration_ms double precision CHECK (duration_ms >= 0),
            ADD COLUMN prompt_tokens integer NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
            ADD COLUMN completion_tokens integer NOT NULL DEFAULT 0
                CHECK (completion_tokens >= 0),
            ADD COLUMN event_id text;

        ALTER TABLE agent.escalations
            ADD COLUMN step text NOT NULL DEFAULT '',
            ADD COLUMN summary jsonb NOT NULL DEFAULT '{}'
                CHECK (jsonb_typeof(summary) = 'object'),
            ADD COLUMN transcript_url text NOT NULL DEFAULT '';
        """
    )
    # Support-webhook deliveries wait here until the webhook accepts them (never lost).
    op.execute(outbox_ddl("agent"))


def downgrade() -> None:
    op.execute(outbox_drop_ddl("agent"))
    op.execute(
        """
        ALTER TABLE agent.escalations
            DROP COLUMN transcript_url, DROP COLUMN summary, DROP COLUMN step;
        ALTER TABLE agent.transcript_entries
            DROP COLUMN event_id, DROP COLUMN completion_tokens, DROP COLUMN prompt_tokens,
            DROP COLUMN duration_ms, DROP COLUMN tool_call_id,
            DROP CONSTRAINT transcript_entries_outcome_check,
            ADD CONSTRAINT transcript_entries_outcome_check CHECK (outcome IN ('ok', 'error')),
            DROP CONSTRAINT transcript_entries_role_check,
            ADD CONSTRAINT transcript_entries_role_check
                CHECK (role IN ('system', 'user', 'assistant', 'tool'));
        ALTER TABLE agent.sessions
            DROP COLUMN completion_tokens, DROP COLUMN prompt_tokens,
            DROP COLUMN setup_started_at, DROP COLUMN webhook_verified, DROP COLUMN step,
            DROP COLUMN funnel_slug;
        """
    )
