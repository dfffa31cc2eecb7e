"""Matcher: clicks (sessions), identities, matches, dedupe registry, inbox, outbox.

Revision ID: 20261129_0620_matcher_core
Revises:
Create Date: 2026-11-29 06:20
"""

from alembic import op

from trackai_kit.outbox import outbox_ddl, outbox_drop_ddl

revision = "20261129_0620_matcher_core"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        r"""
        -- One row per browser session of a tenant: what the ad click left behind (fbclid, _fbc,
        -- _fbp, UTM, landing page) and how to recognise the visitor later (IP, user agent).
        CREATE TABLE matcher.clicks (
            id bigserial PRIMARY KEY,
            tenant_id uuid NOT NULL,
            session_id text NOT NULL CHECK (length(session_id) BETWEEN 1 AND 128),
            first_seen_at timestamptz NOT NULL,
            last_seen_at timestamptz NOT NULL,
            hits integer NOT NULL DEFAULT 1 CHECK (hits >= 1),
            fbclid text,
            fbc text,
            fbp text,
            client_ip inet,
            -- The /24 (IPv4) or /64 (IPv6) around client_ip: "same network" candidates.
            ip_prefix cidr GENERATED ALWAYS AS (
                network(set_masklen(client_ip, CASE WHEN family(client_ip) = 4 THEN 24 ELSE 64 END))
            ) STORED,
            user_agent text,
            -- MD5 of the user agent as a compact index key (not a security measure): user agents
            -- can exceed a btree entry, a 16-byte digest cannot.
            ua_digest uuid GENERATED ALWAYS AS (md5(user_agent)::uuid) STORED,
            browser_family text,
            os_family text,
            device_type text,
            landing_url text,
            referrer text,
            utm jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(utm) = 'object'),
            CONSTRAINT clicks_session_uq UNIQUE (tenant_id, session_id),
            CONSTRAINT clicks_seen_order_ck CHECK (last_seen_at >= first_seen_at)
        );
        -- Stage 1 (deterministic): the session id carried through the checkout is served by
        -- clicks_session_uq. Stage 2 (semi-deterministic): same fbclid / fbc / fbp within 7 days
        -- before the purchase; most sessions have none of them, hence partial indexes.
        CREATE INDEX clicks_fbclid_idx ON matcher.clicks (tenant_id, fbclid, first_seen_at)
            WHERE fbclid IS NOT NULL;
        CREATE INDEX clicks_fbc_idx ON matcher.clicks (tenant_id, fbc, first_seen_at)
            WHERE fbc IS NOT NULL;
        CREATE INDEX clicks_fbp_idx ON matcher.clicks (tenant_id, fbp, first_seen_at)
            WHERE fbp IS NOT NULL;
        -- Stage 3 (probabilistic): candidates active in the window before the purchase with the
        -- same IP, the same /24 or /64, or the same user agent; and, for value frequencies and
        -- time-only candidates, every session of the tenant in the window.
        CREATE INDEX clicks_ip_idx ON matcher.clicks (tenant_id, client_ip, last_seen_at)
            WHERE client_ip IS NOT NULL;
        CREATE INDEX clicks_ip_prefix_idx ON matcher.clicks (tenant_id, ip_prefix, last_seen_at)
            WHERE ip_prefix IS NOT NULL;
        CREATE INDEX clicks_ua_idx ON matcher.clicks (tenant_id, ua_digest, last_seen_at)
            WHERE ua_digest IS NOT NULL;
        CREATE INDEX clicks_tenant_last_seen_idx ON matcher.clicks (tenant_id, last_seen_at);

        -- E-mail / phone hashes seen on lead forms (or checkout starts), tied to the session
        -- and to the external_id the pixel received.
        CREATE TABLE matcher.identities (
            id bigserial PRIMARY KEY,
            tenant_id uuid NOT NULL,
            session_id text CHECK (length(session_id) BETWEEN 1 AND 128),
            email_hash char(64) CHECK (email_hash ~ '^[0-9a-f]{64}$'),
            phone_hash char(64) CHECK (phone_hash ~ '^[0-9a-f]{64}$'),
            external_id text CHECK (length(external_id) BETWEEN 1 AND 128),
            source text NOT NULL DEFAULT 'lead'
                CHECK (source IN ('lead', 'checkout_start', 'purchase')),
            first_seen_at timestamptz NOT NULL,
            last_seen_at timestamptz NOT NULL,
            CONSTRAINT identities_key_ck CHECK (email_hash IS NOT NULL OR phone_hash IS NOT NULL),
            CONSTRAINT identities_seen_order_ck CHECK (last_seen_at >= first_seen_at),
            -- Redelivered hits update the same row instead of adding one.
            CONSTRAINT identities_sighting_uq UNIQUE NULLS NOT DISTINCT
                (tenant_id, session_id, email_hash, phone_hash)
        );
        -- Stage 1 by e-mail / phone: the most recent sighting before the purchase within the
        -- funnel's look-back.
        CREATE INDEX identities_email_idx ON matcher.identities
            (tenant_id, email_hash, last_seen_at DESC) WHERE email_hash IS NOT NULL;
        CREATE INDEX identities_phone_idx ON matcher.identities
            (tenant_id, phone_hash, last_seen_at DESC) WHERE phone_hash IS NOT NULL;
        -- The identities of a session (enriching a session-id match with hashed keys).
        CREATE INDEX identities_session_idx ON matcher.identities (tenant_id, session_id)
            WHERE session_id IS NOT NULL;
        CREATE INDEX identities_external_id_idx ON matcher.identities (tenant_id, external_id)
            WHERE external_id IS NOT NULL;

        -- The click linked to each order, decided once: a later click cannot steal it
        -- (INSERT ... ON CONFLICT (tenant_id, gateway, order_id) DO NOTHING).
        CREATE TABLE matcher.matches (
            id bigserial PRIMARY KEY,
            tenant_id uuid NOT NULL,
            gateway text NOT NULL,
            order_id text NOT NULL,
            conversion_id uuid,
            purchase_time timestamptz NOT NULL,
            stage text NOT NULL
                CHECK (stage IN ('deterministic', 'semi', 'probabilistic', 'none')),
            method text,
            click_id bigint REFERENCES matcher.clicks (id) ON DELETE SET NULL,
            session_id text,
            score double precision,
            runner_up_score double precision,
            evidence jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(evidence) = 'object'),
            emq numeric(4, 2) CHECK (emq BETWEEN 0 AND 10),
            matched_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT matches_order_uq UNIQUE (tenant_id, gateway, order_id),
            CONSTRAINT matches_none_ck CHECK (stage <> 'none' OR click_id IS NULL)
        );
        -- Review lists (unmatched, probabilistic) and per-day statistics of a tenant.
        CREATE INDEX matches_tenant_stage_time_idx ON matcher.matches
            (tenant_id, stage, matched_at DESC);
        CREATE INDEX matches_tenant_time_idx ON matcher.matches (tenant_id, matched_at);
        CREATE INDEX matches_click_idx ON matcher.matches (click_id) WHERE click_id IS NOT NULL;

        -- Exactly one conversion per (tenant, event name, order): the unique event_id decides,
        -- whatever the number of webhooks, redeliveries or concurrent consumers.
        CREATE TABLE matcher.dedupe_registry (
            event_id char(64) PRIMARY KEY CHECK (event_id ~ '^[0-9a-f]{64}$'),
            tenant_id uuid NOT NULL,
            gateway text NOT NULL,
            order_id text NOT NULL,
            event_name text NOT NULL,
            source_status text NOT NULL,
            match_id bigint REFERENCES matcher.matches (id) ON DELETE SET NULL,
            emq numeric(4, 2) CHECK (emq BETWEEN 0 AND 10),
            registered_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT dedupe_registry_order_event_uq
                UNIQUE (tenant_id, gateway, order_id, event_name)
        );
        -- Export and review of a tenant's conversions by time.
        CREATE INDEX dedupe_registry_tenant_time_idx ON matcher.dedupe_registry
            (tenant_id, registered_at);

        -- Consumer idempotency: a message id seen once is not processed again.
        CREATE TABLE matcher.inbox (
            message_id text PRIMARY KEY,
            message_type text NOT NULL,
            processed_at timestamptz NOT NULL DEFAULT now()
        );
        -- Retention: delete processed ids older than the broker can redeliver.
        CREATE INDEX inbox_processed_at_idx ON matcher.inbox (processed_at);
        """
    )
    # Transactional outbox (trackai_kit.outbox relay), written in the same transaction as the rows.
    op.execute(outbox_ddl("matcher"))


def downgrade() -> None:
    op.execute(outbox_drop_ddl("matcher"))
    op.execute(
        """
        DROP TABLE matcher.inbox;
        DROP TABLE matcher.dedupe_registry;
        DROP TABLE matcher.matches;
        DROP TABLE matcher.identities;
        DROP TABLE matcher.clicks;
        """
    )
