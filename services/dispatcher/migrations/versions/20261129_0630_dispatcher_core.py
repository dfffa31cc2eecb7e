"""Dispatcher: per-event delivery state, every attempt, circuit breakers, DLQ replays.

Revision ID: 20261129_0630_dispatcher_core
Revises:
Create Date: 2026-11-29 06:30
"""

from alembic import op

revision = "20261129_0630_dispatcher_core"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        r"""
        -- One row per event to deliver: its current state and the Meta server event itself
        -- (hashed user data; fbc, fbp, IP and user agent unhashed, as Meta requires).
        CREATE TABLE dispatcher.dispatches (
            event_id char(64) PRIMARY KEY CHECK (event_id ~ '^[0-9a-f]{64}$'),
            tenant_id uuid NOT NULL,
            pixel_id text NOT NULL CHECK (pixel_id ~ '^[0-9]{1,32}$'),
            event_name text NOT NULL,
            event_time timestamptz NOT NULL,
            state text NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'sent', 'retrying', 'parked', 'dead', 'expired')),
            attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            payload jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
            match_stage text,
            match_score double precision,
            emq numeric(4, 2) CHECK (emq BETWEEN 0 AND 10),
            last_batch_id uuid,
            last_http_status smallint,
            last_code integer,
            last_subcode integer,
            reason text,
            next_attempt_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            sent_at timestamptz,
            CONSTRAINT dispatches_sent_ck CHECK ((state = 'sent') = (sent_at IS NOT NULL)),
            CONSTRAINT dispatches_reason_ck
                CHECK (state NOT IN ('dead', 'expired') OR reason IS NOT NULL)
        );
        -- Dashboard and DLQ list: a tenant's events by state, most recently changed first.
        CREATE INDEX dispatches_tenant_state_updated_idx ON dispatcher.dispatches
            (tenant_id, state, updated_at DESC);
        -- Expiry sweep: undelivered events approaching Meta's 7-day limit.
        CREATE INDEX dispatches_undelivered_event_time_idx ON dispatcher.dispatches (event_time)
            WHERE state IN ('pending', 'retrying', 'parked');
        -- Breaker close: release the parked events of one destination.
        CREATE INDEX dispatches_parked_destination_idx ON dispatcher.dispatches
            (tenant_id, pixel_id, created_at) WHERE state = 'parked';
        -- DLQ filters by reason within a tenant.
        CREATE INDEX dispatches_dead_reason_idx ON dispatcher.dispatches
            (tenant_id, reason, updated_at DESC) WHERE state = 'dead';

        -- Every POST to Meta (or its failure to happen), one row per batch attempt; the events
        -- it carried are in dispatch_attempt_events.
        CREATE TABLE dispatcher.dispatch_attempts (
            id bigserial PRIMARY KEY,
            batch_id uuid NOT NULL,
            tenant_id uuid NOT NULL,
            pixel_id text NOT NULL,
            attempt smallint NOT NULL CHECK (attempt >= 1),
            event_count integer NOT NULL CHECK (event_count BETWEEN 1 AND 1000),
            started_at timestamptz NOT NULL,
            finished_at timestamptz NOT NULL,
            latency_ms double precision NOT NULL CHECK (latency_ms >= 0),
            outcome text NOT NULL CHECK (outcome IN (
                'sent', 'retryable', 'permanent', 'timeout', 'invalid', 'breaker_open'
            )),
            http_status smallint,
            meta_code integer,
            meta_subcode integer,
            is_transient boolean,
            fbtrace_id text,
            events_received integer,
            error_message text,
            test_event_code text
        );
        CREATE INDEX dispatch_attempts_batch_idx ON dispatcher.dispatch_attempts (batch_id);
        -- A tenant's recent attempts; and, across tenants, recent failures (Meta-wide outage).
        CREATE INDEX dispatch_attempts_tenant_time_idx ON dispatcher.dispatch_attempts
            (tenant_id, started_at DESC);
        CREATE INDEX dispatch_attempts_failures_time_idx ON dispatcher.dispatch_attempts
            (started_at DESC) WHERE outcome <> 'sent';

        -- Which events each attempt carried. A link table rather than an array column: the
        -- planner cannot cost a GIN lookup into TOASTed arrays well and falls back to scanning.
        -- No foreign key to dispatches: attempts are written while dispatch rows are updated by
        -- the same batch, and the audit trail must outlive a purged dispatch.
        CREATE TABLE dispatcher.dispatch_attempt_events (
            event_id char(64) NOT NULL CHECK (event_id ~ '^[0-9a-f]{64}$'),
            attempt_id bigint NOT NULL
                REFERENCES dispatcher.dispatch_attempts (id) ON DELETE CASCADE,
            PRIMARY KEY (event_id, attempt_id)
        );
        -- The primary key serves "attempts of one event"; this serves "events of one attempt"
        -- and the cascade from dispatch_attempts.
        CREATE INDEX dispatch_attempt_events_attempt_idx ON dispatcher.dispatch_attempt_events
            (attempt_id);

        -- Circuit breaker per destination (tenant + pixel), shared by every dispatcher replica.
        CREATE TABLE dispatcher.breaker_states (
            tenant_id uuid NOT NULL,
            pixel_id text NOT NULL,
            state text NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open', 'half_open')),
            consecutive_failures integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
            opened_at timestamptz,
            probe_after timestamptz,
            last_code integer,
            last_subcode integer,
            reason text,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, pixel_id)
        );
        -- The half-open probe scheduler and the "which destinations are open" view.
        CREATE INDEX breaker_states_open_idx ON dispatcher.breaker_states (probe_after)
            WHERE state <> 'closed';

        -- Who replayed what from the DLQ, and what became of each event.
        CREATE TABLE dispatcher.dlq_replays (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            requested_by text NOT NULL CHECK (length(requested_by) BETWEEN 1 AND 200),
            requested_at timestamptz NOT NULL DEFAULT now(),
            scope text NOT NULL CHECK (scope IN ('one', 'filter', 'all')),
            filter jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(filter) = 'object'),
            selected integer NOT NULL DEFAULT 0,
            replayed integer NOT NULL DEFAULT 0,
            skipped_sent integer NOT NULL DEFAULT 0,
            skipped_expired integer NOT NULL DEFAULT 0,
            finished_at timestamptz
        );
        CREATE INDEX dlq_replays_requested_at_idx ON dispatcher.dlq_replays (requested_at DESC);

        CREATE TABLE dispatcher.dlq_replay_items (
            replay_id uuid NOT NULL REFERENCES dispatcher.dlq_replays (id) ON DELETE CASCADE,
            event_id char(64) NOT NULL REFERENCES dispatcher.dispatches (event_id)
                ON DELETE CASCADE,
            outcome text NOT NULL
                CHECK (outcome IN ('replayed', 'skipped_sent', 'skipped_expired')),
            PRIMARY KEY (replay_id, event_id)
        );
        -- Replay history of one event.
        CREATE INDEX dlq_replay_items_event_idx ON dispatcher.dlq_replay_items (event_id);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE dispatcher.dlq_replay_items;
        DROP TABLE dispatcher.dlq_replays;
        DROP TABLE dispatcher.breaker_states;
        DROP TABLE dispatcher.dispatch_attempt_events;
        DROP TABLE dispatcher.dispatch_attempts;
        DROP TABLE dispatcher.dispatches;
        """
    )
