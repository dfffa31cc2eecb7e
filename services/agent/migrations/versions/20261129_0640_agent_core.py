"""Agent: assistant sessions, their transcripts, escalations to a human.

Revision ID: 20261129_0640_agent_core
Revises:
Create Date: 2026-11-29 06:40
"""

from alembic import op

revision = "20261129_0640_agent_core"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        r"""
        -- One conversation between an operator/customer and the setup assistant.
        CREATE TABLE agent.sessions (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id uuid,
            opened_by text NOT NULL CHECK (length(opened_by) BETWEEN 1 AND 200),
            channel text NOT NULL DEFAULT 'console' CHECK (channel IN ('console', 'http', 'grpc')),
            state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'escalated', 'closed')),
            consecutive_failures integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
            metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            closed_at timestamptz,
            CONSTRAINT sessions_closed_ck CHECK ((state = 'closed') = (closed_at IS NOT NULL))
        );
        -- A tenant's recent sessions.
        CREATE INDEX sessions_tenant_updated_idx ON agent.sessions (tenant_id, updated_at DESC);
        -- Sessions still open (idle sweep).
        CREATE INDEX sessions_open_updated_idx ON agent.sessions (updated_at)
            WHERE state <> 'closed';

        -- Every turn and tool call, in order. Content is redacted before it is written
        -- (trackai_kit.redaction): e-mails and phones typed into the chat never reach disk.
        CREATE TABLE agent.transcript_entries (
            id bigserial PRIMARY KEY,
            session_id uuid NOT NULL REFERENCES agent.sessions (id) ON DELETE CASCADE,
            seq integer NOT NULL CHECK (seq >= 1),
            role text NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
            content text NOT NULL DEFAULT '',
            tool_name text,
            tool_arguments jsonb,
            tool_result jsonb,
            outcome text CHECK (outcome IN ('ok', 'error')),
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT transcript_entries_seq_uq UNIQUE (session_id, seq),
            CONSTRAINT transcript_entries_tool_ck CHECK (role <> 'tool' OR tool_name IS NOT NULL)
        );

        -- Hand-over to a human after repeated failures (3 consecutive by default).
        CREATE TABLE agent.escalations (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            session_id uuid NOT NULL REFERENCES agent.sessions (id) ON DELETE CASCADE,
            tenant_id uuid,
            reason text NOT NULL,
            failure_count integer NOT NULL CHECK (failure_count >= 0),
            state text NOT NULL DEFAULT 'open'
                CHECK (state IN ('open', 'acknowledged', 'resolved')),
            created_at timestamptz NOT NULL DEFAULT now(),
            acknowledged_by text,
            acknowledged_at timestamptz,
            resolved_at timestamptz
        );
        -- At most one open escalation per session.
        CREATE UNIQUE INDEX escalations_one_open_uq ON agent.escalations (session_id)
            WHERE state = 'open';
        -- The human queue: unresolved escalations, oldest first.
        CREATE INDEX escalations_unresolved_idx ON agent.escalations (created_at)
            WHERE state <> 'resolved';
        CREATE INDEX escalations_tenant_created_idx ON agent.escalations
            (tenant_id, created_at DESC);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE agent.escalations;
        DROP TABLE agent.transcript_entries;
        DROP TABLE agent.sessions;
        """
    )
